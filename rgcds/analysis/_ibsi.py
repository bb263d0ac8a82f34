"""pyradiomics feature name -> IBSI feature name and identifier (for the common features).

Names and four-character identifiers follow the IBSI reference manual (Zwanenburg et al.,
Radiology 2020; arXiv:1612.07003). Coverage and known differences are documented in
docs/radiomics_params.md: pyradiomics' ``Kurtosis`` is IBSI kurtosis + 3 (IBSI reports excess
kurtosis), its GLCM features are averaged over 13 directions (IBSI 3D:avg), its ``Entropy`` uses
log2 over the binned histogram (IBSI "discretised intensity entropy"). Features without an IBSI
counterpart (e.g. ``firstorder_TotalEnergy``) have no entry.
"""

from __future__ import annotations

IBSI_NAMES: dict[str, tuple[str, str]] = {
    # --- first order: intensity-based statistics (3.3) and histogram (3.4) ---
    "firstorder_Mean": ("Mean intensity", "Q4LE"),
    "firstorder_Variance": ("Intensity variance", "ECT3"),
    "firstorder_Skewness": ("Intensity skewness", "KE2A"),
    "firstorder_Kurtosis": (
        "Intensity kurtosis (pyradiomics value = IBSI excess kurtosis + 3)",
        "IPH6",
    ),
    "firstorder_Median": ("Median intensity", "Y12H"),
    "firstorder_Minimum": ("Minimum intensity", "1GSF"),
    "firstorder_10Percentile": ("10th intensity percentile", "QG58"),
    "firstorder_90Percentile": ("90th intensity percentile", "8DWT"),
    "firstorder_Maximum": ("Maximum intensity", "84IY"),
    "firstorder_InterquartileRange": ("Intensity interquartile range", "SALO"),
    "firstorder_Range": ("Intensity range", "2OJQ"),
    "firstorder_MeanAbsoluteDeviation": ("Intensity-based mean absolute deviation", "4FUA"),
    "firstorder_RobustMeanAbsoluteDeviation": (
        "Intensity-based robust mean absolute deviation",
        "1128",
    ),
    "firstorder_Energy": ("Intensity-based energy", "N8CA"),
    "firstorder_RootMeanSquared": ("Root mean square intensity", "5ZWQ"),
    "firstorder_Entropy": ("Discretised intensity entropy", "TLU2"),
    "firstorder_Uniformity": ("Discretised intensity uniformity", "BJ5W"),
    # --- morphology (3.1) ---
    "shape_MeshVolume": ("Volume (mesh)", "RNU0"),
    "shape_VoxelVolume": ("Volume (voxel counting)", "YEKZ"),
    "shape_SurfaceArea": ("Surface area (mesh)", "C0JK"),
    "shape_SurfaceVolumeRatio": ("Surface to volume ratio", "2PR5"),
    "shape_Sphericity": ("Sphericity", "QCFX"),
    "shape_Maximum3DDiameter": ("Maximum 3D diameter", "L0JK"),
    "shape_MajorAxisLength": ("Major axis length", "TDIC"),
    "shape_MinorAxisLength": ("Minor axis length", "P9VJ"),
    "shape_LeastAxisLength": ("Least axis length", "7J51"),
    "shape_Elongation": ("Elongation", "Q3CK"),
    "shape_Flatness": ("Flatness", "N17B"),
    # --- grey level co-occurrence matrix (3.6) ---
    "glcm_JointAverage": ("Joint average", "60VM"),
    "glcm_SumSquares": ("Joint variance", "UR99"),
    "glcm_JointEntropy": ("Joint entropy", "TU9B"),
    "glcm_JointEnergy": ("Angular second moment", "8ZQL"),
    "glcm_MaximumProbability": ("Joint maximum", "GYBY"),
    "glcm_DifferenceAverage": ("Difference average", "TF7R"),
    "glcm_DifferenceVariance": ("Difference variance", "D3YU"),
    "glcm_DifferenceEntropy": ("Difference entropy", "NTRS"),
    "glcm_SumAverage": ("Sum average", "ZGXS"),
    "glcm_SumEntropy": ("Sum entropy", "P6QZ"),
    "glcm_Contrast": ("Contrast", "ACUI"),
    "glcm_Id": ("Inverse difference", "IB1Z"),
    "glcm_Idn": ("Normalised inverse difference", "NDRX"),
    "glcm_Idm": ("Inverse difference moment", "WF0Z"),
    "glcm_Idmn": ("Normalised inverse difference moment", "1QCO"),
    "glcm_InverseVariance": ("Inverse variance", "E8JP"),
    "glcm_Correlation": ("Correlation", "NI2N"),
    "glcm_Autocorrelation": ("Autocorrelation", "QWB0"),
    "glcm_ClusterTendency": ("Cluster tendency", "DG8W"),
    "glcm_ClusterShade": ("Cluster shade", "7NFM"),
    "glcm_ClusterProminence": ("Cluster prominence", "AE86"),
    "glcm_Imc1": ("Information correlation 1", "R8DG"),
    "glcm_Imc2": ("Information correlation 2", "JN9H"),
    # --- grey level run length matrix (3.7) ---
    "glrlm_ShortRunEmphasis": ("Short runs emphasis", "22OV"),
    "glrlm_LongRunEmphasis": ("Long runs emphasis", "W4KF"),
    "glrlm_LowGrayLevelRunEmphasis": ("Low grey level run emphasis", "V3SW"),
    "glrlm_HighGrayLevelRunEmphasis": ("High grey level run emphasis", "G3QZ"),
    "glrlm_ShortRunLowGrayLevelEmphasis": ("Short run low grey level emphasis", "HTZT"),
    "glrlm_ShortRunHighGrayLevelEmphasis": ("Short run high grey level emphasis", "GD3A"),
    "glrlm_LongRunLowGrayLevelEmphasis": ("Long run low grey level emphasis", "IVPO"),
    "glrlm_LongRunHighGrayLevelEmphasis": ("Long run high grey level emphasis", "3KUM"),
    "glrlm_GrayLevelNonUniformity": ("Grey level non-uniformity (GLRLM)", "R5YN"),
    "glrlm_GrayLevelNonUniformityNormalized": (
        "Normalised grey level non-uniformity (GLRLM)",
        "OVBL",
    ),
    "glrlm_RunLengthNonUniformity": ("Run length non-uniformity", "W92Y"),
    "glrlm_RunLengthNonUniformityNormalized": ("Normalised run length non-uniformity", "IC23"),
    "glrlm_RunPercentage": ("Run percentage", "9ZK5"),
    "glrlm_GrayLevelVariance": ("Grey level variance (GLRLM)", "8CE5"),
    "glrlm_RunVariance": ("Run length variance", "SXLW"),
    "glrlm_RunEntropy": ("Run entropy", "HJ9O"),
    # --- grey level size zone matrix (3.8) ---
    "glszm_SmallAreaEmphasis": ("Small zone emphasis", "P001"),
    "glszm_LargeAreaEmphasis": ("Large zone emphasis", "48P8"),
    "glszm_LowGrayLevelZoneEmphasis": ("Low grey level zone emphasis", "XMSY"),
    "glszm_HighGrayLevelZoneEmphasis": ("High grey level zone emphasis", "5GN9"),
    "glszm_SmallAreaLowGrayLevelEmphasis": ("Small zone low grey level emphasis", "5RAI"),
    "glszm_SmallAreaHighGrayLevelEmphasis": ("Small zone high grey level emphasis", "HW1V"),
    "glszm_LargeAreaLowGrayLevelEmphasis": ("Large zone low grey level emphasis", "YH51"),
    "glszm_LargeAreaHighGrayLevelEmphasis": ("Large zone high grey level emphasis", "J17V"),
    "glszm_GrayLevelNonUniformity": ("Grey level non-uniformity (GLSZM)", "JNSA"),
    "glszm_GrayLevelNonUniformityNormalized": (
        "Normalised grey level non-uniformity (GLSZM)",
        "Y1RO",
    ),
    "glszm_SizeZoneNonUniformity": ("Zone size non-uniformity", "4JP3"),
    "glszm_SizeZoneNonUniformityNormalized": ("Normalised zone size non-uniformity", "VB3A"),
    "glszm_ZonePercentage": ("Zone percentage", "P30P"),
    "glszm_GrayLevelVariance": ("Grey level variance (GLSZM)", "BYLV"),
    "glszm_ZoneVariance": ("Zone size variance", "3NSA"),
    "glszm_ZoneEntropy": ("Zone size entropy", "GU8N"),
    # --- grey level dependence matrix = IBSI neighbouring grey level dependence (3.11) ---
    "gldm_SmallDependenceEmphasis": ("Low dependence emphasis", "SODN"),
    "gldm_LargeDependenceEmphasis": ("High dependence emphasis", "IMOQ"),
    "gldm_LowGrayLevelEmphasis": ("Low grey level count emphasis", "TL9H"),
    "gldm_HighGrayLevelEmphasis": ("High grey level count emphasis", "OAE7"),
    "gldm_SmallDependenceLowGrayLevelEmphasis": ("Low dependence low grey level emphasis", "EQ3F"),
    "gldm_SmallDependenceHighGrayLevelEmphasis": (
        "Low dependence high grey level emphasis",
        "JA6D",
    ),
    "gldm_LargeDependenceLowGrayLevelEmphasis": ("High dependence low grey level emphasis", "NBZI"),
    "gldm_LargeDependenceHighGrayLevelEmphasis": (
        "High dependence high grey level emphasis",
        "9QMG",
    ),
    "gldm_GrayLevelNonUniformity": ("Grey level non-uniformity (NGLDM)", "FP8K"),
    "gldm_DependenceNonUniformity": ("Dependence count non-uniformity", "Z87G"),
    "gldm_DependenceNonUniformityNormalized": (
        "Normalised dependence count non-uniformity",
        "OKJI",
    ),
    "gldm_GrayLevelVariance": ("Grey level variance (NGLDM)", "1PFV"),
    "gldm_DependenceVariance": ("Dependence count variance", "DNX2"),
    "gldm_DependenceEntropy": ("Dependence count entropy", "FCBV"),
    # --- neighbourhood grey tone difference matrix (3.10) ---
    "ngtdm_Coarseness": ("Coarseness", "QCDE"),
    "ngtdm_Contrast": ("Contrast (NGTDM)", "65HE"),
    "ngtdm_Busyness": ("Busyness", "NQ30"),
    "ngtdm_Complexity": ("Complexity", "HDEZ"),
    "ngtdm_Strength": ("Strength", "1X9X"),
}


def ibsi_name(feature: str) -> str:
    """IBSI label ``"Name (ID)"`` of a pyradiomics feature, or ``""`` when unmapped.

    ``feature`` may carry the image type prefix (``original_firstorder_Mean``).
    """
    parts = feature.split("_")
    key = "_".join(parts[-2:]) if len(parts) >= 2 else feature
    entry = IBSI_NAMES.get(key)
    if entry is None:
        return ""
    name, code = entry
    return f"{name} ({code})"


__all__ = ["IBSI_NAMES", "ibsi_name"]

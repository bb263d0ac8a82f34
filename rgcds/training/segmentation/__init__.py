"""Training of the tumour segmentation 3D U-Net and its shipping as ONNX.

``pipelines/train_segmentation.py`` is the command line; its module docstring describes
the data layout, the augmentation and the stages. The modules:

- :mod:`~rgcds.training.segmentation.data`: the model grid's constants, phantoms written
  into the BraTS layout and cases read from it;
- :mod:`~rgcds.training.segmentation.sampling`: training patches and their augmentation;
- :mod:`~rgcds.training.segmentation.network`: the 3D U-Net;
- :mod:`~rgcds.training.segmentation.evaluation`: torch prediction, per-case scores and
  their summaries;
- :mod:`~rgcds.training.segmentation.kinds`: what differs between the pre-operative,
  post-operative and domain-randomised models;
- :mod:`~rgcds.training.segmentation.loop`: phantom generation and the training loop with
  its checkpoints and progress log;
- :mod:`~rgcds.training.segmentation.export`: ONNX export, the card, and validation on
  held-out cases.

torch, onnx and ONNX Runtime are imported inside the functions that use them.
"""

"""The demo site: a private Orthanc PACS (:mod:`~rgcds.demo.orthanc`), the OHIF viewer in front
of it (:mod:`~rgcds.demo.viewer`) and the hospital demo that pushes studies to ``rgcds serve``
and reads the results there (:mod:`~rgcds.demo.hospital`, ``rgcds demo --pacs``)."""

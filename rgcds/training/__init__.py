"""The training code the site models are built with: the research team's side of rgcds.

``pipelines/train_*.py`` are the command lines; what they run lives here, in modules the
tests and benches import directly. The daemon never imports this package (torch, where a
trainer needs it, is imported inside the function that uses it).
"""

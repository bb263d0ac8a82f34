"""Training of the post-operative residual-tumour and prognosis models (after Sci Rep 2024
14:4576); ``pipelines/train_residual.py`` is its command line and docs/residual.md its guide."""

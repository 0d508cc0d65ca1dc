"""FUSE (Williams et al., 2024): one model's gradient in another model's token space, through an
adapter between their embedding spaces built on a third-order tensor representation of words.

``tensor``: the t-product, the Fourier-domain fit and the t-transpose; ``words``: the fitting words
and the alignment of a prompt's tokens by character offsets; ``adapter``: the grid of ``G_k`` and
the backward pass (plus the baselines and the reference code's backward); ``objective``: the
cross-tokenizer objective and weighted sums on ``reprobook.discrete``'s interface.
"""

"""Discrete prompt optimizers over a token vocabulary, for any causal LM and
any token-level loss: GCG, random search, and MiniPrompt on top. Used by the
ACR chapter and, later, prompt inversion and FUSE."""

from .miniprompt import Attempt, MiniPromptResult, mini_prompt
from .problem import PromptProblem, TokenLoss, allowed_token_mask, context_length, mean_cross_entropy
from .search import (SearchResult, gcg, gcg_proposals, greedy_reproduces, random_free_tokens, random_search,
                     sample_candidates)

__all__ = ["Attempt", "MiniPromptResult", "PromptProblem", "SearchResult", "TokenLoss", "allowed_token_mask",
           "context_length", "gcg", "gcg_proposals", "greedy_reproduces", "mean_cross_entropy", "mini_prompt",
           "random_free_tokens", "random_search", "sample_candidates"]

"""Discrete prompt optimizers over a token vocabulary, on one objective interface
(:class:`Objective`: ids -> loss, embeddings -> loss, one-hot gradient, allowed mask):
GCG, random search, PEZ and AutoDAN's left-to-right append, with MiniPrompt on top of GCG.
The objectives: a causal LM that must emit a target (:class:`PromptProblem`, the ACR chapter)
and a prompt's CLIP similarity to a target image (:class:`ClipImageObjective`, prompt inversion)."""

from .autodan import Prior, autodan_append
from .clip_objective import ClipImageObjective, clip_allowed_mask
from .miniprompt import Attempt, MiniPromptResult, mini_prompt
from .objective import Objective
from .pez import pez, project_to_vocabulary
from .priors import BigramPrior, CausalLMPrior
from .problem import PromptProblem, TokenLoss, allowed_token_mask, context_length, mean_cross_entropy
from .search import (SearchResult, gcg, gcg_proposals, greedy_reproduces, random_free_tokens, random_search,
                     sample_candidates)

__all__ = ["Attempt", "BigramPrior", "CausalLMPrior", "ClipImageObjective", "MiniPromptResult", "Objective",
           "Prior", "PromptProblem", "SearchResult", "TokenLoss", "allowed_token_mask", "autodan_append",
           "clip_allowed_mask", "context_length", "gcg", "gcg_proposals", "greedy_reproduces",
           "mean_cross_entropy", "mini_prompt", "pez", "project_to_vocabulary", "random_free_tokens",
           "random_search", "sample_candidates"]

"""Chapter 10: PRISM (He et al., 2024), black-box prompt engineering by in-context refinement.

:mod:`.loop` is the method (N streams x K iterations, history, re-evaluation of the top C);
:mod:`.engineer` the chat LLM that answers in JSON; :mod:`.experiments` the tasks, the judge, the
white-box baselines and the evaluation. The generators live in :mod:`reprobook.t2i`.
"""

from .engineer import PREFILL, Engineer, EngineerLog, extract_prompt
from .loop import GENERIC_PREFIXES, TASK_KINDS, Candidate, Run, Task, prism, reevaluate

__all__ = ["Candidate", "Engineer", "EngineerLog", "GENERIC_PREFIXES", "PREFILL", "Run", "TASK_KINDS", "Task",
           "extract_prompt", "prism", "reevaluate"]

"""Judges: an optional second opinion on lexicon candidates (Rai & Yao used GPT-4; methods.md §B.1).

A judge is any callable ``judge(tokens, question) -> "yes" | "no"`` that receives a candidate neuron's top
projected tokens and the concept question. Nothing needs the network: the default is no judge (the lexicon rule
alone). `llm_judge` turns any text-completion function (a local model, an API client) into a judge with the paper's
prompt and answer parsing. A judge that raises, or answers neither yes nor no, stops the search with `JudgeError`
naming the neuron, the concept and the answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from interp.vocab.concepts.lexicon import ConceptError

__all__ = ["Judge", "JudgeError", "judge_prompt", "parse_verdict", "call_judge", "llm_judge", "import_judge"]

Judge = Callable[[Sequence[str], str], Any]

SYSTEM_MESSAGE = "You are a helpful assistant."


class JudgeError(ConceptError):
    """A judge raised, or returned something other than yes/no."""


def judge_prompt(tokens: Sequence[str], question: str) -> str:
    """The paper's user message (``prompt_gpt.py``): tokens joined by ``' ,'``, the question, and the format ask."""
    return (
        f"A neuron in language model promotes the following set of words: {' ,'.join(tokens)}. {question} "
        "First, answer in Yes or No format and provide an explanation."
    )


_WORD = re.compile(r"[a-z]+")


def parse_verdict(answer: Any) -> bool | None:
    """True for yes, False for no, None for anything else.

    Accepts booleans and strings whose first word is yes/no in any case (``"Yes, because..."``, ``"no."``).
    """
    if isinstance(answer, bool):
        return answer
    if not isinstance(answer, str):
        return None
    m = _WORD.search(answer.strip().lower())
    if m is None or m.start() > 2:  # the verdict must come first (allowing a quote or bullet)
        return None
    return {"yes": True, "no": False}.get(m.group(0))


def call_judge(judge: Judge, tokens: Sequence[str], question: str, *, where: str) -> bool:
    """Ask ``judge`` and return its verdict; raise `JudgeError` (naming ``where``) when it fails or is unclear."""
    try:
        answer = judge(list(tokens), question)
    except Exception as e:  # any failure of user code becomes one clear error
        raise JudgeError(f"the judge raised {type(e).__name__}: {e} (for {where}; question {question!r})") from e
    verdict = parse_verdict(answer)
    if verdict is None:
        raise JudgeError(
            f"the judge answered {answer!r} for {where}; a judge must answer 'yes' or 'no' (or True/False), "
            f"e.g. 'Yes, ...' (question {question!r})"
        )
    return verdict


def llm_judge(complete: Callable[[str], str]) -> Judge:
    """A judge from a text-completion function ``complete(prompt) -> str`` using the paper's prompt.

    The paper accepts a neuron when ``'yes' in response.split(',')[0].lower()``; here the first word must be yes
    or no, so rambling answers are reported instead of silently read as "no".
    """

    def judge(tokens: Sequence[str], question: str) -> str:
        return complete(judge_prompt(tokens, question))

    judge.__name__ = f"llm_judge({getattr(complete, '__name__', type(complete).__name__)})"
    return judge


def import_judge(spec: str) -> Judge:
    """The judge named by ``"package.module:function"`` (how ``interp concepts --judge`` finds user code).

    With ``"module:function:llm"`` the function is a text-completion function ``complete(prompt) -> str`` and is
    wrapped by `llm_judge` (the paper's prompt). A missing module or attribute, or one that is not callable, raises
    `JudgeError` saying what was looked up.
    """
    import importlib

    parts = spec.split(":")
    if len(parts) not in (2, 3) or not all(parts[:2]) or (len(parts) == 3 and parts[2] != "llm"):
        raise JudgeError(f"--judge must be 'module:function' or 'module:function:llm' "
                         f"(e.g. my_judges:gpt_judge); got {spec!r}")
    module_name, attr = parts[0], parts[1]
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise JudgeError(f"cannot import the judge module {module_name!r} ({e}); it must be importable from the "
                         "current directory or the Python path") from e
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise JudgeError(f"{module_name!r} has no callable {attr!r}" + ("" if fn is None else f" (got {fn!r})"))
    return llm_judge(fn) if len(parts) == 3 else fn

"""What a task is: a seeded source of examples, the prompt, and the rule that grades an answer.

A task owns answer extraction and grading (STYLE.md 4): the reward it names in `rewards` and the
evaluation's `is_correct` / `equivalent` use the same checker, so training and evaluation can never
disagree about what "correct" means.

Examples are plain dicts (they cross process boundaries to the reward pool). Every example has
`id` (str), `question` (str) and `answer` (str, the reference); tasks add their own fields
(`numbers` and `target` for countdown, `tests` for code).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

# The R1-Zero template, verbatim from the DeepSeek-R1 report; `{prompt}` is the question.
R1_ZERO_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer. The reasoning process and answer are enclosed within "
    "<think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning process "
    "here </think> <answer> answer here </answer>. User: {prompt}. Assistant:"
)

# DeepSeek-R1's readable output (the cold-start format, docs/coldstart.md): the R1-Zero template
# with the summary between the reasoning and the answer, so a model trained on cold-start rows
# is asked for what it was taught. The report gives no template for R1; this one changes only
# what R1-Zero's says about the output.
R1_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with a summary and the answer. The reasoning process and answer are "
    "enclosed within <think> </think> and <answer> </answer> tags, respectively, i.e., <think> "
    "reasoning process here </think> summary here <answer> answer here </answer>. User: "
    "{prompt}. Assistant:"
)

# For chat models the same instruction goes in the user turn and the chat template frames it.
CHAT_INSTRUCTION = (
    "{prompt}\nThink about the reasoning process first, then give the answer. Enclose the "
    "reasoning in <think> </think> and the answer in <answer> </answer> tags."
)

TEMPLATES = ("r1zero", "prefill", "chat", "raw", "r1")


def chat_messages(question: str) -> list[dict[str, str]]:
    """The conversation `template=chat` puts a question in: one user turn with the instruction."""
    return [{"role": "user", "content": CHAT_INSTRUCTION.format(prompt=question)}]


def render_prompt(question: str, template: str = "r1zero", tokenizer: Any = None) -> str:
    """The text the model continues.

    - `r1zero`: the report's template, for base models; the model writes `<think>` itself.
    - `prefill`: the same, ending in ` <think>` (TinyZero style), so the completion starts inside
      the reasoning; pair it with the `format_prefill` reward.
    - `chat`: the tokenizer's chat template around an instruction, for chat/instruct models.
    - `raw`: the question as it is (data whose prompts are already written out, e.g. for a
      model fine-tuned by `r1lab sft template=raw`).
    - `r1`: the R1-Zero template asking for the readable format (a summary before the answer),
      for models fine-tuned on cold-start data; pair it with the `format_readable` reward.
    """
    if template == "r1zero":
        return R1_ZERO_TEMPLATE.format(prompt=question)
    if template == "r1":
        return R1_TEMPLATE.format(prompt=question)
    if template == "prefill":
        return R1_ZERO_TEMPLATE.format(prompt=question) + " <think>"
    if template == "chat":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError("template 'chat' needs a tokenizer that has a chat template")
        messages = chat_messages(question)
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if template == "raw":
        return question
    raise ValueError(f"unknown template '{template}'; valid: {', '.join(TEMPLATES)}")


def encode_prompts(prompts: Sequence[str], template: str, tokenizer: Any) -> list[list[int]]:
    """Token ids of rendered prompts, as the model sees them.

    A chat template writes every special token itself (`{{ bos_token }}` in Llama 3's and
    Gemma's), so a chat prompt is tokenized without the tokenizer's own: adding them would give
    a double BOS. The raw `r1zero` / `prefill` text gets them as any plain text would.
    """
    special = template != "chat"
    return [list(ids) for ids in tokenizer(list(prompts), add_special_tokens=special)["input_ids"]]


@dataclass(frozen=True)
class RewardSpec:
    """Which rewards a task trains with: weights by registered reward name, and their params."""

    weights: Mapping[str, float]
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    accuracy: str = ""
    """The reward whose score decides correctness (score >= 1 - 1e-9 means correct)."""
    format: str = "format"
    """The reward that decides format compliance (score >= 1 - 1e-9 means compliant)."""

    def with_format(self, name: str) -> RewardSpec:
        """This spec with `name` as its format reward, in the old one's place and with its
        weight; the old one's params go with it (they were that reward's)."""
        if name == self.format:
            return self
        weights = {(name if k == self.format else k): w for k, w in self.weights.items()}
        params = {k: v for k, v in self.params.items() if k != self.format}
        return replace(self, weights=weights, params=params, format=name)


def reward_score(result: float | tuple[float, Mapping[str, Any]]) -> float:
    """The score of a reward function's return value, with or without its info dict."""
    return float(result[0]) if isinstance(result, tuple) else float(result)


class Task(Protocol):
    """A task: examples, prompts, grading. See the module docstring."""

    name: str
    rewards: RewardSpec

    def examples(self, split: str, n: int | None = None) -> list[dict[str, Any]]:
        """`n` examples of `split` ("train" or "test"), the same ones for the same task seed."""
        ...

    def extract_answer(self, completion: str) -> str | None:
        """The final answer a completion gives, or None if it gives none."""
        ...

    def is_correct(self, completion: str, example: Mapping[str, Any]) -> bool:
        """Whether the completion's answer is right (the task's accuracy reward, thresholded)."""
        ...

    def equivalent(self, a: str, b: str, example: Mapping[str, Any]) -> bool:
        """Whether two extracted answers are the same answer (for majority voting)."""
        ...

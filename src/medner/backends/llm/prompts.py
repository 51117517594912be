"""The local model's prompts: the shared templates rendered through its tokenizer.

The templates (tasks, targets, answer parsers, copy regions) are shared with the hosted
backend and live in ``medner.backends.prompted.prompts``. What is the local model's own is
how a prompt becomes the string it reads (``render_prompt``, through the chat template) and
how long that is in tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

from medner.backends.prompted.prompts import Task
from medner.labels import LabelSchema


def render_prompt(tokenizer, user_message: str) -> str:
    """The exact prompt string the model sees: through the chat template when there is one.

    Training and generation both call this, so they can never disagree on the prompt.
    """
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": user_message}],
                                             tokenize=False, add_generation_prompt=True)
    return user_message if user_message.endswith("\n") else user_message + "\n"


def prompt_tokens(tokenizer, tasks: Sequence[Task], schema: LabelSchema, text: str) -> int:
    """Tokens in the longest of the tasks' prompts for ``text``."""
    return max(len(tokenizer(render_prompt(tokenizer, task.user_message(text, schema)))
                   ["input_ids"]) for task in tasks)


__all__ = ["prompt_tokens", "render_prompt"]

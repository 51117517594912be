"""What the prompted backends share; not a backend itself.

The LLM backend (``medner.backends.llm``, a local causal LM) and the hosted backend
(``medner.backends.hosted``, a model behind a provider's API) ask the same prompts and read
the answers the same way; each brings only its answers.

prompts.py  prompt templates by name: tasks, prompt and target from a Document, the relation
            a task asks for, copy regions for constrained decoding
parse.py    tolerant parsers of answer text into (text, label) items and relation pairs
answers.py  the one path documents -> pieces -> prompts -> answers -> Documents: parsed,
            grounded to character offsets, merged and counted
"""

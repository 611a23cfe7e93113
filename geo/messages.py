"""Messages a reader may see in their own language: the English text, with its template and values.

A `Message` is the English string wherever a string goes (JSON, the change history, the CLI), and
keeps the template it came from, so that the web layer can show it in the reader's language
(`web.i18n.localize`). Templates are `str.format` patterns; a translation has the same fields.
"""
from __future__ import annotations


class Message(str):
    """English text that remembers its template and values."""

    template: str
    values: dict

    def __new__(cls, template: str, **values) -> Message:
        self = super().__new__(cls, template.format(**values))
        self.template, self.values = template, values
        return self


def msg(template: str, **values) -> Message:
    """The message `template` filled with `values` (extracted for translation as `msg`)."""
    return Message(template, **values)

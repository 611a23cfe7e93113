"""Messages a reader may see in their own language: the English text, with its template and values.

A `Message` is the English string wherever a string goes (JSON, the change history, the CLI), and
keeps the template it came from, so that the web layer can show it in the reader's language
(`web.i18n.localize`). Templates are `str.format` patterns; a translation has the same fields. A
value may itself be a Message (said in the same language), and `joined` says several in a row.
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

    def __reduce__(self):
        # Copied (dataclasses.asdict deep-copies) or pickled as the text with its template and
        # values, never re-made from the text alone, which need not be a template.
        return _restore, (type(self), str(self), dict(self.__dict__))


def msg(template: str, **values) -> Message:
    """The message `template` filled with `values` (extracted for translation as `msg`)."""
    return Message(template, **values)


class Joined(Message):
    """Messages said one after another, with a separator that is itself translated ("; " → "；")."""

    parts: list

    def __new__(cls, parts: list, separator: str = "; ") -> Joined:
        self = str.__new__(cls, separator.join(parts))
        self.template, self.values, self.parts = separator, {}, list(parts)
        return self


def joined(parts, separator: str = "; ") -> Joined:
    """`parts` (Messages or plain words such as codes) as one Message, separated by `separator`."""
    return Joined(list(parts), separator)


def _restore(cls: type[Message], text: str, state: dict) -> Message:
    self: Message = str.__new__(cls, text)
    self.__dict__.update(state)
    return self

"""Chinese by default, English selectable (?lang=en, remembered in a cookie)."""
from __future__ import annotations

from flask import Flask, current_app, request
from flask_babel import Babel, gettext

from geo import vocabulary
from geo.messages import Joined, Message

from .config import project_path

COOKIE = "anwang_lang"
# The kinds of domain words pages show (geo/vocabulary.py), handed to their scripts as one block.
PAGE_WORDS = ("level", "category", "severity", "status", "staff", "risk", "unit_kind", "unit_status",
              "resolution", "visit_kind")


def select_locale() -> str:
    languages = current_app.config["LANGUAGES"]
    wanted = request.args.get("lang") or request.cookies.get(COOKIE)
    if wanted in languages:
        return wanted
    return current_app.config["BABEL_DEFAULT_LOCALE"]


def localize(obj):
    """`obj` with every Message in it in the reader's language (English where no translation is)."""
    if isinstance(obj, Joined):
        return gettext(obj.template).join(str(localize(p)) for p in obj.parts)
    if isinstance(obj, Message):
        try:
            return gettext(obj.template).format(**{k: localize(v) for k, v in obj.values.items()})
        except (KeyError, IndexError, ValueError):     # a translation whose fields do not fit
            return str(obj)
    if isinstance(obj, dict):
        return {k: localize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [localize(v) for v in obj]
    return obj


def words(kind: str) -> dict:
    """Every key of one kind of domain word with the reader's name for it, in the vocabulary's order."""
    return vocabulary.names(kind, select_locale())


def page_words() -> dict:
    """The domain words page scripts label data with: names per kind, and what each level is."""
    return {"levels": vocabulary.LEVELS, "names": {kind: words(kind) for kind in PAGE_WORDS}}


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=select_locale,
          default_translation_directories=str(project_path("web", "translations")))

    @app.after_request
    def remember_language(response):
        lang = request.args.get("lang")
        if lang in app.config["LANGUAGES"]:
            response.set_cookie(COOKIE, lang, max_age=365 * 86400, samesite="Lax", httponly=True)
        return response

    @app.context_processor
    def inject_locale():
        return {"locale": select_locale(), "words": words, "page_words": page_words}

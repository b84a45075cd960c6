"""An operator's input form that shows every validation problem as a sentence under its input.

Each input is read from ``ctx.params`` and, when a check is given, checked by a library
function that raises :class:`coral_core.errors.CoralsegError`; its message becomes the input's
``error_message`` and the input is marked invalid, so the App shows the sentence in the form
and FiftyOne refuses to execute (``execute_operator`` raises with the same sentence).

An error about library settings (:attr:`CoralsegError.settings`) ends with the form fields
that change them, by the labels the user sees, e.g. ``(in the form, change "Not coral
below", "Coral from")``: an input that changes a library setting is named as the setting.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import Any

import fiftyone.operators.types as types

from coral_core.errors import CoralsegError, setting_hint

from ..checks import form_path

# the forms a resolve_input builds while :func:`_field_labels` listens (None: nobody listens)
_built_forms: ContextVar[list[Form] | None] = ContextVar("coralseg_built_forms", default=None)


class Form:
    """Inputs of one ``resolve_input`` call, with the sentences of what is wrong."""

    def __init__(self, ctx, view_target: bool = True) -> None:
        self.ctx = ctx
        self.inputs = types.Object()
        self.errors: list[str] = []
        self.labels: dict[str, str] = {}  # input (library setting) name -> its label
        listening = _built_forms.get()
        if listening is not None:
            listening.append(self)
        if view_target:
            self.inputs.view_target(ctx)

    def property(self) -> types.Property:
        return types.Property(self.inputs)

    def changes(self, name: str, *settings: str) -> None:
        """Declare that the field ``name`` (declared already) sets library ``settings`` named
        otherwise, e.g. ``changes("out", "out_dir")``, so error hints name its label."""
        for setting in settings:
            self.labels[setting] = self.labels[name]

    def hint(self, error: BaseException) -> str:
        """The fields declared so far that change the settings ``error`` is about."""
        return _form_hint(error, self.labels)

    def _checked(self, prop, name: str, value: Any, required: bool, label: str, check):
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self._invalid(prop, f"give the {label.lower()}")
            return None
        if check is None:
            return value
        try:
            return check(value)
        except CoralsegError as err:
            self._invalid(prop, str(err) + self.hint(err))
            return None

    def _invalid(self, prop, sentence: str) -> None:
        sentence = sentence[:1].upper() + sentence[1:]
        prop.invalid = True
        prop.error_message = sentence
        self.errors.append(sentence)

    def text(
        self,
        name: str,
        label: str,
        *,
        required: bool = True,
        default: str | None = None,
        description: str | None = None,
        check: Callable[[str], Any] | None = None,
    ) -> Any:
        """A string input; returns ``check(value)`` (or the value) when valid, else None."""
        self.labels[name] = label
        prop = self.inputs.str(
            name,
            label=label,
            # FiftyOne checks required inputs against ctx.params, where defaults are absent
            required=required and default is None,
            default=default,
            description=description,
        )
        return self._checked(prop, name, self.ctx.params.get(name, default), required, label, check)

    def path(
        self,
        name: str,
        label: str,
        *,
        folder: bool = False,
        required: bool = True,
        default: str | None = None,
        description: str | None = None,
        check: Callable[[str], Any] | None = None,
    ) -> Any:
        """A file (or ``folder``) input shown as FiftyOne's file explorer; returns
        ``check(path)`` (or the path) when valid, else None, with the path made absolute by
        :func:`path_value`.

        The explorer's value is a dict holding ``absolute_path``. Python callers give a plain
        string: the input is then declared a string, since FiftyOne validates a file input as
        an object and would refuse the string.
        """
        self.labels[name] = label
        given = self.ctx.params.get(name)
        common = dict(label=label, required=required and default is None, description=description)
        if isinstance(given, str):
            prop = self.inputs.str(name, default=default, **common)
        else:
            explorer = types.FileExplorerView(
                choose_dir=folder,
                button_label="Choose a folder..." if folder else "Choose a file...",
            )
            chosen = {"absolute_path": default} if default is not None else None
            prop = self.inputs.file(name, default=chosen, view=explorer, **common)
        value = path_value(given if given is not None else default)
        return self._checked(prop, name, value, required, label, check)

    def number(
        self,
        name: str,
        label: str,
        *,
        default: float | None = None,
        minimum: float | None = None,
        maximum: float | None = None,
        integer: bool = False,
        required: bool = False,
        description: str | None = None,
    ) -> Any:
        self.labels[name] = label
        make = self.inputs.int if integer else self.inputs.float
        prop = make(
            name,
            label=label,
            default=default,
            min=minimum,
            max=maximum,
            required=required,
            description=description,
        )
        value = self.ctx.params.get(name, default)
        if value is not None and (
            (minimum is not None and value < minimum) or (maximum is not None and value > maximum)
        ):
            bounds = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            self._invalid(prop, f"{label} must be {bounds}, got {value}")
            return None
        return self._checked(prop, name, value, required, label, None)

    def flag(self, name: str, label: str, *, default: bool = False, description: str | None = None):
        self.labels[name] = label
        self.inputs.bool(name, label=label, default=default, description=description)
        return bool(self.ctx.params.get(name, default))

    def choice(
        self,
        name: str,
        label: str,
        choices: Iterable[str],
        *,
        default: str | None = None,
        description: str | None = None,
        empty: str = "there is nothing to choose from",
    ) -> str | None:
        """A dropdown of ``choices``; an empty list is itself the error sentence ``empty``."""
        self.labels[name] = label
        choices = list(choices)
        dropdown = types.Dropdown(label=label, description=description)
        for value in choices:
            dropdown.add_choice(value, label=value)
        if default not in choices:
            default = choices[0] if choices else None
        prop = self.inputs.enum(
            name, dropdown.values(), default=default, required=default is None, view=dropdown
        )
        if not choices:
            self._invalid(prop, empty)
            return None
        value = self.ctx.params.get(name, default)
        if value not in choices:
            self._invalid(prop, f"{value!r} is not one of: {', '.join(choices)}")
            return None
        return value

    def field_choice(
        self, name: str, label: str, kinds: tuple[type, ...], *, default: str | None, empty: str
    ) -> str | None:
        """A dropdown of the target's fields holding one of the label types ``kinds``."""
        schema = self.ctx.dataset.get_field_schema(flat=True) if self.ctx.dataset else {}
        fields = sorted(
            field for field, spec in schema.items() if getattr(spec, "document_type", None) in kinds
        )
        return self.choice(name, label, fields, default=default, empty=empty)

    def fail(self, name: str, sentence: str) -> None:
        """Mark input ``name`` invalid with ``sentence``."""
        self._invalid(self.inputs.properties[name], sentence)

    def check(self, name: str, check: Callable[[], Any]) -> bool:
        """Run ``check()``; a :class:`CoralsegError` it raises marks input ``name`` invalid."""
        try:
            check()
        except CoralsegError as err:
            self.fail(name, str(err) + self.hint(err))
            return False
        return True

    def note(self, name: str, text: str) -> None:
        self.inputs.view(name, types.Notice(label=text))


def path_value(given: Any) -> str | None:
    """The absolute path an input holds, from the file explorer's ``{"absolute_path": ...}``
    or a typed string; relative paths start at :data:`fiftyone_plugin.checks.FORM_ROOT`."""
    if isinstance(given, dict):
        given = given.get("absolute_path")
    if given is None or not str(given).strip():
        return None
    return form_path(str(given))


ERROR_KEY = "error"


def sentence_errors(execute: Callable) -> Callable:
    """Wrap an operator's ``execute``: a :class:`CoralsegError` run in the App becomes its
    sentence (a notification and the output form's only line) instead of a traceback.

    Delegated runs raise it, so the run is marked failed with the same sentence. Either way an
    error about settings names the form fields that change them (:func:`_field_labels`).
    """

    @functools.wraps(execute)
    def run(operator, ctx):
        try:
            return execute(operator, ctx)
        except CoralsegError as err:
            hint = _form_hint(err, _field_labels(operator, ctx)) if err.settings else ""
            if ctx.delegated:
                if hint:
                    raise CoralsegError(f"{err}{hint}") from err
                raise
            sentence = f"{str(err)[:1].upper()}{str(err)[1:]}{hint}"
            ctx.ops.notify(sentence, variant="error")
            return {ERROR_KEY: sentence}

    return run


def _form_hint(error: BaseException, labels: dict[str, str]) -> str:
    return setting_hint(
        error,
        lambda setting: f'"{labels[setting]}"' if setting in labels else None,
        "in the form, change",
    )


def _field_labels(operator, ctx) -> dict[str, str]:
    """The field labels of ``operator``'s form for ``ctx``: its ``resolve_input`` builds the
    form again (the one the user filled belongs to an earlier request)."""
    forms: list[Form] = []
    token = _built_forms.set(forms)
    try:
        operator.resolve_input(ctx)
    finally:
        _built_forms.reset(token)
    return {setting: label for form in forms for setting, label in form.labels.items()}


def show_error(outputs: types.Object, ctx) -> bool:
    """Put the run's error sentence into ``outputs``; whether there was one."""
    sentence = (getattr(ctx, "results", None) or {}).get(ERROR_KEY)
    if sentence:
        outputs.view(ERROR_KEY, types.Error(label="The run stopped", description=sentence))
    return bool(sentence)


def progress_callback(ctx) -> Callable[[float, str], None]:
    """``(fraction, label) -> ctx.set_progress`` (logged when run immediately)."""

    def report(fraction: float, label: str) -> None:
        ctx.set_progress(progress=float(fraction), label=label)

    return report

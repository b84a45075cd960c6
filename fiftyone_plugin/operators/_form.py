"""An operator's input form that shows every validation problem as a sentence under its input.

Each input is read from ``ctx.params`` and, when a check is given, checked by a library
function that raises :class:`coral_core.errors.CoralsegError`; its message becomes the input's
``error_message`` and the input is marked invalid, so the App shows the sentence in the form
and FiftyOne refuses to execute (``execute_operator`` raises with the same sentence).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import fiftyone.operators.types as types

from coral_core.errors import CoralsegError


class Form:
    """Inputs of one ``resolve_input`` call, with the sentences of what is wrong."""

    def __init__(self, ctx, view_target: bool = True) -> None:
        self.ctx = ctx
        self.inputs = types.Object()
        self.errors: list[str] = []
        if view_target:
            self.inputs.view_target(ctx)

    def property(self) -> types.Property:
        return types.Property(self.inputs)

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
            self._invalid(prop, str(err))
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
        prop = self.inputs.str(
            name,
            label=label,
            # FiftyOne checks required inputs against ctx.params, where defaults are absent
            required=required and default is None,
            default=default,
            description=description,
        )
        return self._checked(prop, name, self.ctx.params.get(name, default), required, label, check)

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
            self.fail(name, str(err))
            return False
        return True

    def note(self, name: str, text: str) -> None:
        self.inputs.view(name, types.Notice(label=text))


def progress_callback(ctx) -> Callable[[float, str], None]:
    """``(fraction, label) -> ctx.set_progress`` (logged when run immediately)."""

    def report(fraction: float, label: str) -> None:
        ctx.set_progress(progress=float(fraction), label=label)

    return report

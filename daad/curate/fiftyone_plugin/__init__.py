"""daad's FiftyOne plugin: review decisions made in the App, written to the DAAD catalog.

FiftyOne loads this file from the plugin folder (`daad review` puts it on
FIFTYONE_PLUGINS_DIR) and runs the operators in the App's server process. They are
thin: they pick the samples (the selection in the grid, else the sample open in the
modal) and call `daad.curate.review`, which writes the catalog first (who and when go to its
event log) and then the FiftyOne samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import fiftyone.operators as foo
import fiftyone.operators.types as types

from daad.curate import review

from daad.core import taxonomy
from daad.core.masks import default_who


def _targets(ctx):
    """The samples an action applies to: the grid selection, else the open sample."""
    ids = list(ctx.selected) or ([ctx.current_sample] if ctx.current_sample else [])
    if not ids:
        raise ValueError("select samples in the grid (or open one) first")
    return ctx.dataset.select(ids)


def _who(ctx) -> str:
    """The App's user where FiftyOne knows one (teams), else the OS user running the App."""
    user = getattr(ctx, "user", None)
    email = getattr(user, "email", None) if user else None
    return f"fiftyone:{email}" if email else default_who("fiftyone")


@dataclass(frozen=True)
class _Spec:
    """What FiftyOne shows of an operator: its config, and its button in the grid's secondary actions."""

    name: str
    label: str
    description: str
    icon: str
    button: str  # the button's label
    prompt: bool = False  # the button opens the operator's input form first


class _CatalogOperator(foo.Operator):
    """The shape every daad operator shares: a grid button, the targets, one review call, a notification.

    A subclass gives its `spec` and says in `decide` what it does to the targets; FiftyOne
    only sees the operators `register` hands it, never this base.
    """

    spec: _Spec

    @property
    def config(self):
        s = self.spec
        return foo.OperatorConfig(name=s.name, label=s.label, description=s.description, icon=s.icon, risk_level=types.RiskLevel.LOW)

    def resolve_placement(self, ctx):
        button = types.Button(label=self.spec.button, icon=self.spec.icon, prompt=self.spec.prompt)
        return types.Placement(types.Places.SAMPLES_GRID_SECONDARY_ACTIONS, button)

    def decide(self, ctx, samples, who: str) -> review.DecisionReport:
        raise NotImplementedError

    def execute(self, ctx):
        report = self.decide(ctx, _targets(ctx), _who(ctx))
        ctx.ops.reload_samples()
        ctx.ops.notify(report.summary(), variant="error" if report.errors else "success")
        return {"changed": report.changed, "unchanged": report.unchanged, "errors": report.errors}


class SetAnomalyClass(_CatalogOperator):
    """Set the anomaly class of the selected samples (one of the paper's eight, or unassigned)."""

    spec = _Spec(
        "set_anomaly_class", "daad: set anomaly class",
        "Set the DAAD anomaly class of the selected samples (recorded in the catalog)",
        icon="category", button="daad: set class", prompt=True,
    )

    def resolve_input(self, ctx):
        inputs = types.Object()
        choices = types.RadioGroup()
        for cls in taxonomy.CLASSES_AND_UNASSIGNED:
            choices.add_choice(cls, label=cls)
        inputs.enum("anomaly_class", choices.values(), required=True, label="Anomaly class", view=choices)
        return types.Property(inputs, view=types.View(label="daad: set anomaly class"))

    def decide(self, ctx, samples, who: str) -> review.DecisionReport:
        return review.set_class(samples, ctx.params["anomaly_class"], who=who)


class _JudgeMasks(_CatalogOperator):
    """Accept or reject the masks of the targets (`accept`), through `review.judge_masks`."""

    accept: bool

    def decide(self, ctx, samples, who: str) -> review.DecisionReport:
        return review.judge_masks(samples, accept=self.accept, who=who)


class AcceptMask(_JudgeMasks):
    """Accept the masks of the selected samples: proposed -> annotated."""

    accept = True
    spec = _Spec(
        "accept_mask", "daad: accept mask", "Mark the masks of the selected samples as checked by a person (annotated)",
        icon="check_circle", button="daad: accept mask",
    )


class RejectMask(_JudgeMasks):
    """Reject the masks of the selected samples: they go back to missing (to be drawn)."""

    accept = False
    spec = _Spec(
        "reject_mask", "daad: reject mask", "Reject the masks of the selected samples (mask status -> missing, to be drawn)",
        icon="cancel", button="daad: reject mask",
    )


def register(plugin):
    plugin.register(SetAnomalyClass)
    plugin.register(AcceptMask)
    plugin.register(RejectMask)

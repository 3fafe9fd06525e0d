"""daad's FiftyOne plugin: review decisions made in the App, written to the DAAD catalog.

FiftyOne loads this file from the plugin folder (`daad review` puts it on
FIFTYONE_PLUGINS_DIR) and runs the operators in the App's server process. They are
thin: they pick the samples (the selection in the grid, else the sample open in the
modal) and call `daad.curate.review`, which writes the catalog first (who and when go to its
event log) and then the FiftyOne samples.
"""

from __future__ import annotations

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


def _finish(ctx, report: review.DecisionReport) -> dict:
    ctx.ops.reload_samples()
    ctx.ops.notify(report.summary(), variant="error" if report.errors else "success")
    return {"changed": report.changed, "unchanged": report.unchanged, "errors": report.errors}


def _placement(label: str, icon: str, prompt: bool):
    return types.Placement(types.Places.SAMPLES_GRID_SECONDARY_ACTIONS, types.Button(label=label, icon=icon, prompt=prompt))


class SetAnomalyClass(foo.Operator):
    """Set the anomaly class of the selected samples (one of the paper's eight, or unassigned)."""

    @property
    def config(self):
        return foo.OperatorConfig(
            name="set_anomaly_class",
            label="daad: set anomaly class",
            description="Set the DAAD anomaly class of the selected samples (recorded in the catalog)",
            icon="category",
            risk_level=types.RiskLevel.LOW,
        )

    def resolve_placement(self, ctx):
        return _placement("daad: set class", "category", prompt=True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        choices = types.RadioGroup()
        for cls in taxonomy.CLASSES_AND_UNASSIGNED:
            choices.add_choice(cls, label=cls)
        inputs.enum("anomaly_class", choices.values(), required=True, label="Anomaly class", view=choices)
        return types.Property(inputs, view=types.View(label="daad: set anomaly class"))

    def execute(self, ctx):
        report = review.set_class(_targets(ctx), ctx.params["anomaly_class"], who=_who(ctx))
        return _finish(ctx, report)


class AcceptMask(foo.Operator):
    """Accept the masks of the selected samples: proposed -> annotated."""

    @property
    def config(self):
        return foo.OperatorConfig(
            name="accept_mask",
            label="daad: accept mask",
            description="Mark the masks of the selected samples as checked by a person (annotated)",
            icon="check_circle",
            risk_level=types.RiskLevel.LOW,
        )

    def resolve_placement(self, ctx):
        return _placement("daad: accept mask", "check_circle", prompt=False)

    def execute(self, ctx):
        return _finish(ctx, review.judge_masks(_targets(ctx), accept=True, who=_who(ctx)))


class RejectMask(foo.Operator):
    """Reject the masks of the selected samples: they go back to missing (to be drawn)."""

    @property
    def config(self):
        return foo.OperatorConfig(
            name="reject_mask",
            label="daad: reject mask",
            description="Reject the masks of the selected samples (mask status -> missing, to be drawn)",
            icon="cancel",
            risk_level=types.RiskLevel.LOW,
        )

    def resolve_placement(self, ctx):
        return _placement("daad: reject mask", "cancel", prompt=False)

    def execute(self, ctx):
        return _finish(ctx, review.judge_masks(_targets(ctx), accept=False, who=_who(ctx)))


def register(plugin):
    plugin.register(SetAnomalyClass)
    plugin.register(AcceptMask)
    plugin.register(RejectMask)

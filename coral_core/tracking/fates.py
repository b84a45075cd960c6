"""What happened to each colony between two visits, and the colony ids both visits share.

From a :class:`~.linking.Linking`, one :class:`FateLink` per link (a row of the tidy table):

* ``persisted``: linked one to one; its growth (negative: shrinkage) is in the row;
* ``partial_mortality``: linked one to one, but lost more than ``partial_mortality_loss``
  (default 30%) of its area (compared over what both images show): part of it died;
* ``death``: a before colony in view with no colony at its place in the after visit;
* ``recruitment``: an after colony in view where the before visit had none;
* ``fusion``: two or more before colonies became one: one row per before colony, all to
  the after colony, which keeps the id of its largest-overlap parent;
* ``fission``: one before colony became two or more: one row per fragment; the fragment of
  largest overlap keeps the parent's id, the others get new ids;
* ``out_of_view``: the other visit's image does not show the colony (the camera moved).

A one-to-one link of two classes (or a fusion/fission partner of another class) is kept,
with ``genus_changed`` set: a colony does not change genus, so the row asks for a look.
Colony ids are 1..N for the before colonies in their order; after colonies linked one to
one (or fused into) carry their before colony's id; the others get N+1, N+2, ...
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from coral_core.tracking.colonies import TrackedColony
from coral_core.tracking.linking import Linking

FATES = (
    "persisted",
    "partial_mortality",
    "death",
    "recruitment",
    "fusion",
    "fission",
    "out_of_view",
)
# Losing more than this share of its aligned area makes a linked colony's fate partial mortality.
PARTIAL_MORTALITY_LOSS = 0.3


@dataclass(frozen=True)
class FateLink:
    """One link between the visits.

    Attributes:
        before, after: colony indices in each visit's list (None for a recruit / a death).
        fate: one of :data:`FATES`.
        colony_id: the before colony's id (a recruit's own id).
        after_colony_id: the id the after colony carries (None for a death).
        iou: intersection over union of the aligned masks (0 without a partner).
        genus_changed: the two colonies' classes differ.
    """

    before: int | None
    after: int | None
    fate: str
    colony_id: int
    after_colony_id: int | None
    iou: float
    genus_changed: bool


@dataclass(frozen=True)
class ColonyFates:
    """The links of a pair of visits and each colony's id.

    Attributes:
        links: one per link, before colonies first (in order), then recruits.
        before_ids, after_ids: the colony id of each colony of each visit.
    """

    links: tuple[FateLink, ...]
    before_ids: tuple[int, ...]
    after_ids: tuple[int, ...]

    def counts(self) -> dict[str, int]:
        """Links per fate, every fate present (zero where none)."""
        counts = dict.fromkeys(FATES, 0)
        for link in self.links:
            counts[link.fate] += 1
        return counts


def colony_fates(
    before: Sequence[TrackedColony],
    after: Sequence[TrackedColony],
    linking: Linking,
    partial_mortality_loss: float = PARTIAL_MORTALITY_LOSS,
) -> ColonyFates:
    """Each colony's fate and id (definitions in the module docstring)."""
    if not 0 < partial_mortality_loss < 1:
        raise ValueError(f"partial_mortality_loss must be in (0, 1), got {partial_mortality_loss}")
    before_ids = list(range(1, len(before) + 1))
    after_ids: list[int | None] = [None] * len(after)
    partner = dict(linking.pairs)
    for i, j in linking.pairs:
        after_ids[j] = before_ids[i]
    next_id = len(before) + 1
    for j in range(len(after)):
        if after_ids[j] is None:
            after_ids[j] = next_id
            next_id += 1
    fused_into = set(linking.fused.values())
    split_from = set(linking.split.values())

    def changed(i: int, j: int) -> bool:
        return before[i].label != after[j].label

    def in_view(i: int | None, j: int | None) -> bool:
        return (i is None or bool(linking.before_in_view[i])) and (
            j is None or bool(linking.after_in_view[j])
        )

    links = []
    for i in range(len(before)):
        if i in partner:
            j = partner[i]
            if not in_view(i, j):
                fate = "out_of_view"
            elif j in fused_into:
                fate = "fusion"
            elif i in split_from:
                fate = "fission"
            elif linking.after_common[j] < (1 - partial_mortality_loss) * linking.before_common[i]:
                fate = "partial_mortality"
            else:
                fate = "persisted"
        elif i in linking.fused:
            j = linking.fused[i]
            fate = "fusion" if in_view(i, j) else "out_of_view"
        else:
            j = None
            fate = "death" if in_view(i, None) else "out_of_view"
        links.append(
            _link(i, j, fate, before_ids[i], after_ids, linking, j is not None and changed(i, j))
        )
        if i in split_from:
            for fragment, parent in linking.split.items():
                if parent == i:
                    fate = "fission" if in_view(i, fragment) else "out_of_view"
                    links.append(
                        _link(
                            i,
                            fragment,
                            fate,
                            before_ids[i],
                            after_ids,
                            linking,
                            changed(i, fragment),
                        )
                    )
    linked_after = set(partner.values()) | set(linking.split)
    for j in range(len(after)):
        if j not in linked_after:
            fate = "recruitment" if in_view(None, j) else "out_of_view"
            links.append(_link(None, j, fate, after_ids[j], after_ids, linking, False))
    return ColonyFates(tuple(links), tuple(before_ids), tuple(int(v) for v in after_ids))


def _link(
    i: int | None,
    j: int | None,
    fate: str,
    colony_id: int,
    after_ids: list[int | None],
    linking: Linking,
    genus_changed: bool,
) -> FateLink:
    iou = linking.iou.get((i, j), 0.0) if i is not None and j is not None else 0.0
    after_id = after_ids[j] if j is not None else None
    return FateLink(i, j, fate, colony_id, after_id, float(iou), genus_changed)

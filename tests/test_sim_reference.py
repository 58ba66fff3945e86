"""The numba kernels against the plain-Python reference (tests/reference_sim.py):
every fixture, a few hand-made layouts that pin rules the random generators rarely
reach, and random layouts, within 1e-6 per sink."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared_schema.grid import render_grid
from shared_schema.world import World
from tests.conftest import FIXTURE_FILES, world_of
from tests.reference_sim import reference_sink_rates
from training.sim.engine import simulate
from training.sim.fixtures import Fixture, load_fixtures
from training.sim.random_layouts import noisy_layout, routed_layout

TOLERANCE = 1e-6
FIXTURES: list[Fixture] = [f for path in FIXTURE_FILES for f in load_fixtures(path)]
SETTINGS = settings(max_examples=200, deadline=None, derandomize=True)


def assert_agree(world: World) -> None:
    kernel = simulate(world).rates
    reference = reference_sink_rates(world)
    assert len(kernel) == len(reference)
    worst = max((abs(a - b) for a, b in zip(kernel, reference, strict=True)), default=0.0)
    assert worst <= TOLERANCE, f"\n{render_grid(world)}\nkernel    {kernel}\nreference {reference}"


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.name)
def test_reference_agrees_on_fixture(fixture: Fixture) -> None:
    assert_agree(fixture.world)


# (name, grid, items): layouts exercising rules that no fixture and few random layouts reach.
HAND_MADE = [
    (
        # both items' only exits are the inserters on the dead-end tile; the circuit machine
        # never gets cable, so it drains no iron and the mixed belt clogs: 0 and 0
        "unfed-machine-drains-nothing",
        """
        .. .. aaaaaaaa .. ..
        .. .. aa    aa i> K>
        .. .. aaaaaaaa .. ..
        .. .. .. i^ .. .. ..
        S> Y> b> b> .. .. ..
        S> Y> .. iv .. .. ..
        .. .. aaaaaaaa .. ..
        .. .. aa    aa i> K>
        .. .. aaaaaaaa .. ..
        """,
        [
            (2, 0, "copper-cable"),
            (6, 1, "copper-cable"),
            (0, 4, "iron-plate"),
            (0, 5, "copper-plate"),
            (2, 6, "electronic-circuit"),
            (6, 7, "electronic-circuit"),
        ],
    ),
    (
        # two pickers share 0.86 plates/s in proportion to what each asks (0.86 and 0.43):
        # 0.573 to the sink, 0.287 into the iron-stick machine
        "pickers-share-in-proportion",
        """
        .. aaaaaaaa .. ..
        .. aa    aa i> K>
        .. aaaaaaaa .. ..
        .. .. i^ .. .. ..
        S> i> b> .. .. ..
        .. .. iv .. .. ..
        .. .. Kv .. .. ..
        """,
        [(1, 0, "iron-stick"), (5, 1, "iron-stick"), (0, 4, "iron-plate"), (2, 6, "iron-plate")],
    ),
    (
        # a loop fed by a side-load whose splitter returns half to the loop: 3.75/s, after
        # ~110 backward/forward rounds (routed_layout seed 117)
        "side-loaded-loop-converges-slowly",
        """
        bv b< b< b< b< b> b> b> bv
        bv .. .. .. Y^YY^ K< b< b<
        bv .. .. .. u^ .. .. ## ..
        bv b< u< .. d< b< b< b< ..
        bv .. .. .. .. .. .. b^ ..
        bv .. .. .. .. .. .. b^ ..
        bv .. .. .. .. b> b> b^ ..
        bv .. .. .. d^ b^ .. .. ..
        b> b> b> b> b^ S^ .. .. ..
        """,
        [(6, 1, "iron-plate"), (5, 8, "iron-plate")],
    ),
]


@pytest.mark.parametrize(("grid", "items"), [(g, i) for _, g, i in HAND_MADE], ids=[n for n, _, _ in HAND_MADE])
def test_reference_agrees_on_hand_made_layout(grid: str, items: list[tuple[int, int, str]]) -> None:
    assert_agree(world_of(textwrap.dedent(grid), items))


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.integers(6, 11))
def test_reference_agrees_on_routed_layouts(seed: int, size: int) -> None:
    assert_agree(routed_layout(np.random.default_rng(seed), size))


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.integers(6, 9))
def test_reference_agrees_on_noisy_layouts(seed: int, size: int) -> None:
    assert_agree(noisy_layout(np.random.default_rng(seed), size=size))

"""The policy network: convolutions plus self-attention over the tiles, factored heads.

`Policy(world)` reads a batch of world tensors (int16[B, 6, H, W], any H and W up to 32:
nothing in the network depends on the grid size) and returns `Heads`, the logits of
every part of the factored action for every tile at once, and the value:

- tile: one logit per tile plus the "done" logit (last), [B, H*W + 1];
- kind: per tile, which placeable kind (`training.env.PLACEABLE`), [B, H*W, 6];
- facing: per tile and kind, [B, H*W, 6, 4];
- recipe: per tile (read for assemblers), [B, H*W, recipes];
- end: per tile (read for undergrounds), [B, H*W, 2];
- value: [B].

The kind, facing, recipe and end heads are conditioned on the chosen tile by reading
that tile's features, so computing them for all tiles lets the ONNX export run the
whole network once per step. `FactoredDistribution` applies the env's action mask
(`obs["action_mask"]`, int8[B, 6, 4, H*W]) to every head and its "done" mask
(`obs["done_mask"]`, int8[B]) to the tile head, so a policy never proposes an illegal
action, and gives samples, greedy actions, log-probs and entropies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from shared_schema.catalog import load_catalog, recipe_tables
from shared_schema.entities import Entity, UndergroundEnd
from shared_schema.world import Channel
from training.config import check_precision
from training.env.core import ENDS, FACINGS, PLACEABLE
from training.hints import HINTS, distance_hints

KINDS = len(PLACEABLE)
ASSEMBLER = PLACEABLE.index(Entity.ASSEMBLER)
UNDERGROUND = PLACEABLE.index(Entity.UNDERGROUND)
MASKED = -1e9  # logit of an illegal choice: exp() is exactly 0 in float32
ROLES = 8  # `_RecipeHint`'s roles: 5 of marker tiles, 3 shares of the world's
MAX_CHAIN_DEPTH = 3  # recipes deep the roles look for ingredients (the deepest trial's chain)


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the network; the defaults are the shipped policy's (small: it trains on CPU)."""

    width: int = 32  # features per tile
    conv_blocks: int = 3  # residual 3x3 convolution blocks
    dilate: bool = True  # block i's first convolution has dilation 2**i
    attention_layers: int = 1  # transformer encoder layers over the tiles
    heads: int = 2  # attention heads (each costs a tokens x tokens matrix per world)
    items: int = 0  # item ids the embedding knows (0: the catalog's)
    recipes: int = 0  # recipe ids (0: the catalog's)
    pool: int = 2  # attention runs over pool x pool blocks of tiles (1: every tile its own token)
    hints: bool = True  # read the distance hints (`training.hints`), the recipe hint and roles (`_RecipeHint`)

    def resolved(self) -> ModelConfig:
        catalog = load_catalog()
        return replace(self, items=self.items or len(catalog.items), recipes=self.recipes or len(catalog.recipes))

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def bf16_native(device: torch.device) -> bool:
    """Whether `device` runs bfloat16 convolutions and matmuls natively: a CUDA device that
    supports it, or a CPU with AMX or AVX-512 BF16 (where oneDNN's bf16 3x3 convolutions at
    this width run several times faster than float32's)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    avx512_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    return bool(amx() or avx512_bf16())


def resolve_device(want: str) -> torch.device:
    """A trainer's `--device`: "auto" (CUDA when present, else the CPU), "cpu", "cuda" or
    "cuda:N"; SystemExit naming the problem when CUDA is asked for but absent."""
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {want}: no CUDA device is available")
    try:
        return torch.device(want)
    except RuntimeError as error:
        raise SystemExit(f"--device {want}: not a device ({error})") from None


def precision_autocast(device: torch.device, precision: str) -> torch.autocast:
    """The context a training forward pass runs in: bfloat16 autocast of the trunk for
    precision "bf16", and for "auto" where `bf16_native(device)`; float32 for "fp32". The
    heads and the recipe hint stay float32 either way (`float32`)."""
    check_precision(precision)
    bf16 = precision == "bf16" or (precision == "auto" and bf16_native(device))
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def float32(like: Tensor) -> torch.autocast:
    """Autocast off on `like`'s device: what runs inside stays float32."""
    return torch.autocast(like.device.type, enabled=False)


class _Lookup(torch.autograd.Function):
    """`F.embedding` whose backward is one `index_add_`. On the CPU, embedding's own backward
    is several times slower for these small tables, whose ids are mostly the same few (most
    tiles are empty): it sorts the ids and sums each one's rows on one thread."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, weight: Tensor, index: Tensor) -> Tensor:
        ctx.save_for_backward(index)
        ctx.rows = weight.shape[0]  # type: ignore[attr-defined]
        return F.embedding(index, weight)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        (index,) = ctx.saved_tensors  # type: ignore[attr-defined]
        grad = grad.reshape(-1, grad.shape[-1])
        weight_grad = grad.new_zeros(ctx.rows, grad.shape[-1])  # type: ignore[attr-defined]
        return weight_grad.index_add_(0, index.reshape(-1), grad), None


def _lookup(table: nn.Embedding, index: Tensor) -> Tensor:
    if torch.is_grad_enabled() and table.weight.requires_grad:
        return _Lookup.apply(table.weight, index)  # type: ignore[no-any-return]
    return table(index)  # what inference and the ONNX export see


class Heads(NamedTuple):
    tile: Tensor
    kind: Tensor
    facing: Tensor
    recipe: Tensor
    end: Tensor
    value: Tensor


class Features(NamedTuple):
    """What `Policy.features` computes before the per-tile heads: tokens [B, H*W, d], the
    tile logits [B, H*W + 1], the value [B] and the world's recipe hint [B, R].
    `Policy.at(tokens, recipe_hint)` gives the kind, facing, recipe and end logits of
    chosen tiles only, which is what training needs."""

    tokens: Tensor
    tile: Tensor
    value: Tensor
    recipe_hint: Tensor


class _RecipeHint(nn.Module):
    """Per world, for each recipe: whether it makes a sink's item, whether it makes an
    ingredient of such a recipe, and the share of its ingredients the sources carry. A
    learned mix of the three is added to the recipe logits: otherwise each of the
    catalog's recipes is learned from the few examples that use it.

    Also the items' roles (`ROLES` per tile): whether a source's item goes to a sink as
    it is or into a machine, whether a sink's item must be made, how many more sinks take
    a source's item (split it) and how many more sources carry a sink's (merge them), and
    over the whole world the shares of what still has to be made. Whether a machine is
    needed, and which source feeds it, depends on items at opposite ends of the region,
    which convolutions see late and attention only weakly."""

    def __init__(self, items: int, recipes: int) -> None:
        super().__init__()
        tables = recipe_tables()
        makes = torch.zeros(recipes, items)  # makes[r, i]: recipe r's product is item i
        takes = torch.zeros(recipes, items)  # takes[r, i]: recipe r needs item i
        for r in range(1, min(recipes, len(tables.time))):
            for i in tables.product_item[r]:
                if 0 < i < items:
                    makes[r, i] = 1.0
            for i in tables.ingredient_item[r]:
                if 0 < i < items:
                    takes[r, i] = 1.0
        feeds = ((makes @ takes.T) @ makes).clamp(max=1.0)  # feeds[r, i]: r makes an ingredient of what makes i
        self.register_buffer("makes", makes, persistent=False)
        self.register_buffer("feeds", feeds, persistent=False)
        self.register_buffer("takes", takes / takes.sum(1, keepdim=True).clamp(min=1.0), persistent=False)
        self.register_buffer("needs", takes, persistent=False)
        self.mix = nn.Parameter(torch.tensor([2.0, 1.0, 1.0]))
        self.items = items

    makes: Tensor
    feeds: Tensor
    takes: Tensor
    needs: Tensor

    def forward(self, world: Tensor) -> tuple[Tensor, Tensor]:
        """([B, R] the learned mix of the three recipe hints, [B, ROLES, H, W] the roles)."""
        with float32(world):  # the hint is added to logits
            return self._hints_and_roles(world)

    def _hints_and_roles(self, world: Tensor) -> tuple[Tensor, Tensor]:
        b, _, h, w = world.shape
        ent, value = world[:, Channel.ENTITY].flatten(1), world[:, Channel.ITEM].flatten(1).long()
        source, sink = ent == Entity.SOURCE, ent == Entity.SINK
        item = torch.where(source | sink, value, 0)  # assemblers hold recipe ids
        recipe = torch.where(ent == Entity.ASSEMBLER, value, 0)

        def tally(index: Tensor, where: Tensor, size: int) -> Tensor:  # [B, size]: tiles `where` holding each id
            return torch.zeros(b, size, device=world.device).scatter_add(1, index, where.float())

        def present(index: Tensor, where: Tensor, size: int) -> Tensor:  # [B, size]: 1 where some tile has it
            return tally(index, where, size).clamp(max=1.0)

        sinks, sources = present(item, sink, self.items), present(item, source, self.items)
        hints = torch.stack((sinks @ self.makes.T, sinks @ self.feeds.T, sources @ self.takes.T), dim=-1)
        machines = present(recipe, ent == Entity.ASSEMBLER, self.makes.shape[0])
        machines[:, 0] = 0.0  # recipe 0 is "none"
        to_make = sinks * (1.0 - sources)
        supplied = (sources + machines @ self.makes).clamp(max=1.0)
        ingredients, frontier = torch.zeros_like(sinks), to_make
        for _ in range(MAX_CHAIN_DEPTH):  # what goes into what must be made, down the chain
            frontier = ((frontier @ self.makes.T).clamp(max=1.0) @ self.needs).clamp(max=1.0)
            ingredients = torch.maximum(ingredients, frontier)
            frontier = frontier * (1.0 - sources)

        def share(wanted: Tensor, have: Tensor) -> Tensor:  # [B]: share of the wanted items not had
            return (wanted * (1.0 - have)).sum(1) / wanted.sum(1).clamp(min=1.0)

        def at_tiles(per_item: Tensor, where: Tensor) -> Tensor:  # [B, T]: an item's flag where the marker is
            return per_item.gather(1, item) * where.float()

        # a source whose item several sinks take is split; a sink fed by several sources, merged
        to_split = (tally(item, sink, self.items) - 1.0).clamp(0.0, 3.0) / 3.0
        to_merge = (tally(item, source, self.items) - 1.0).clamp(0.0, 3.0) / 3.0
        per_world = torch.stack((share(sinks, sources), share(sinks, supplied), share(ingredients, supplied)), 1)
        roles = torch.cat(
            (
                torch.stack((at_tiles(sinks, source), at_tiles(ingredients, source), at_tiles(to_make, sink)), 1),
                torch.stack((at_tiles(to_split, source), at_tiles(to_merge, sink)), 1),
                per_world[:, :, None].expand(b, 3, h * w),
            ),
            dim=1,
        )
        return hints.clamp(max=1.0) @ self.mix, roles.view(b, ROLES, h, w)


class _Block(nn.Module):
    """A residual pair of 3x3 convolutions; the first is dilated, so a stack of blocks
    with dilations 1, 2, 4, ... sees far along a row (an underground's exit lies up to
    five tiles past its entrance) at the cost of plain convolutions."""

    def __init__(self, width: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.norm = nn.GroupNorm(1, width)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.gelu(self.conv1(F.gelu(self.norm(x)))))


class _Attention(nn.Module):
    """A pre-norm transformer layer over the tiles. Plain matmuls: at this size (a few
    hundred tokens, head width 8) they beat the fused CPU kernel several times over,
    and they export to ONNX as they are."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.ff = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        weights = torch.softmax((q * (d // self.heads) ** -0.5) @ k.transpose(-1, -2), dim=-1)  # scale the small side
        x = x + self.out((weights @ v).transpose(1, 2).reshape(b, t, d))
        return x + self.ff(self.norm2(x))


class Policy(nn.Module):
    """Actor and critic in one network (see the module docstring)."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config = (config or ModelConfig()).resolved()
        d = config.width
        self.entity = nn.Embedding(max(Entity) + 1, d)
        self.facing = nn.Embedding(FACINGS, d)
        self.item = nn.Embedding(config.items, d)  # what a source or sink carries
        self.recipe_in = nn.Embedding(config.recipes, d)  # what an assembler makes
        self.end_in = nn.Embedding(max(UndergroundEnd) + 1, d)
        self.part = nn.Embedding(9, d)
        self.where = nn.Linear(3, d)  # buildable, x and y scaled to [0, 1]
        self.distance = nn.Linear(HINTS, d) if config.hints else None
        self.recipe_hint = _RecipeHint(config.items, config.recipes) if config.hints else None
        self.roles = nn.Linear(ROLES, d) if config.hints else None  # `_RecipeHint`'s item roles
        dilations = [2**i if config.dilate else 1 for i in range(config.conv_blocks)]
        self.blocks = nn.Sequential(*(_Block(d, dilation) for dilation in dilations))
        self.attention = nn.Sequential(*(_Attention(d, config.heads) for _ in range(config.attention_layers)))
        self.norm = nn.LayerNorm(d)
        self.tile_head = nn.Linear(d, 1)
        self.done_head = nn.Linear(d, 1)
        self.kind_head = nn.Linear(d, KINDS)
        self.facing_head = nn.Linear(d, KINDS * FACINGS)
        self.recipe_head = nn.Linear(d, config.recipes)
        self.end_head = nn.Linear(d, len(ENDS))
        self.value_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 1))
        # the activations are channels-last (`embed` builds [B, H, W, d]); oneDNN's convolutions,
        # their backward most of all, run fastest when the weights are too
        self.blocks.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # (not in the stubs)

    def embed(self, world: Tensor, hints: Tensor | None = None) -> Tensor:
        """[B, 6, H, W] integer world (and its float [B, 6, H, W] hints (`training.hints`), computed
        here when not given) -> [B, d, H, W] tile features."""
        world = world.long()
        ent, item = world[:, Channel.ENTITY], world[:, Channel.ITEM]
        marker = (ent == Entity.SOURCE) | (ent == Entity.SINK)
        machine = ent == Entity.ASSEMBLER
        x = (
            _lookup(self.entity, ent)
            + _lookup(self.facing, world[:, Channel.FACING])
            + _lookup(self.item, torch.where(marker, item, 0))
            + _lookup(self.recipe_in, torch.where(machine, item, 0))
            + _lookup(self.end_in, world[:, Channel.UNDERGROUND])
            + _lookup(self.part, world[:, Channel.PART])
        )
        b, h, w = ent.shape
        ys = torch.arange(h, device=world.device, dtype=torch.float32) / max(h - 1, 1)
        xs = torch.arange(w, device=world.device, dtype=torch.float32) / max(w - 1, 1)
        where = torch.stack(
            (
                world[:, Channel.BUILDABLE].float(),
                xs.view(1, 1, w).expand(b, h, w),
                ys.view(1, h, 1).expand(b, h, w),
            ),
            dim=-1,
        )
        x = x + self.where(where)
        if self.distance is not None:
            if hints is None:
                hints = torch.as_tensor(distance_hints(world.cpu().numpy()), device=world.device)
            x = x + self.distance(hints.permute(0, 2, 3, 1))
        return x.permute(0, 3, 1, 2)

    def features(self, world: Tensor, hints: Tensor | None = None) -> Features:
        """The trunk: convolutions, then attention over pool x pool blocks of tiles whose
        result is added back to every tile of its block."""
        x = self.embed(world, hints)
        b, d, h, w = x.shape
        recipe_hint = x.new_zeros(b, self.config.recipes)
        if self.recipe_hint is not None and self.roles is not None:
            recipe_hint, roles = self.recipe_hint(world)
            x = x + self.roles(roles.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        x = self.blocks(x)  # [B, d, H, W]
        p = self.config.pool
        if p > 1:
            coarse = F.avg_pool2d(x, p, ceil_mode=True)  # [B, d, ceil(H/p), ceil(W/p)]
            hc, wc = coarse.shape[-2:]
            tokens = coarse.flatten(2).transpose(1, 2)
            update = (self.attention(tokens) - tokens).transpose(1, 2).reshape(b, d, hc, wc)
            x = x + update.repeat_interleave(p, dim=2).repeat_interleave(p, dim=3)[:, :, :h, :w]
            tokens = x.permute(0, 2, 3, 1).reshape(b, h * w, d)
        else:
            tokens = self.attention(x.permute(0, 2, 3, 1).reshape(b, h * w, d))  # [B, H*W, d]
        with float32(tokens):  # the heads are cheap, and bf16 would round logits to 3 digits
            tokens = self.norm(tokens.float())
            pooled = tokens.mean(dim=1)
            tile = torch.cat((self.tile_head(tokens).squeeze(-1), self.done_head(pooled)), dim=1)
            return Features(tokens, tile, self.value_head(pooled).squeeze(-1), recipe_hint)

    def at(self, tokens: Tensor, recipe_hint: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """kind [..., K], facing [..., K, 4], recipe [..., R] and end [..., 2] logits of the
        tiles whose tokens [B, ..., d] are given; `recipe_hint` [B, R] is the world's."""
        with float32(tokens):
            facing = self.facing_head(tokens)
            hint = recipe_hint.view(recipe_hint.shape[0], *([1] * (tokens.dim() - 2)), recipe_hint.shape[-1])
            return (
                self.kind_head(tokens),
                facing.view(*facing.shape[:-1], KINDS, FACINGS),
                self.recipe_head(tokens) + hint,
                self.end_head(tokens),
            )

    def forward(self, world: Tensor, hints: Tensor | None = None) -> Heads:
        features = self.features(world, hints)
        return Heads(features.tile, *self.at(features.tokens, features.recipe_hint), features.value)


def _masked(logits: Tensor, legal: Tensor) -> Tensor:
    return logits.masked_fill(~legal, MASKED)


def _pick(x: Tensor, index: Tensor) -> Tensor:
    """x[b, index[b]] for a batch: [B, N, ...] and [B] -> [B, ...]."""
    return x[torch.arange(x.shape[0], device=x.device), index]


class FactoredDistribution:
    """The masked action distribution of a batch: tile (or done), then kind given the
    tile, facing given tile and kind, recipe (assemblers) and end (undergrounds) given the
    tile. Actions are int64[B, 5] in the env's layout (tile, kind, facing, recipe, end);
    parts a choice does not read are 0 and carry no probability. Without a `done_mask`,
    "done" is always legal.

    Built from full `Heads`, or with `from_features` from the trunk alone, which computes
    the per-tile heads only at the tiles chosen (the same numbers, a fraction of the cost)."""

    def __init__(
        self,
        heads: Heads | Features,
        action_mask: Tensor,
        policy: Policy | None = None,
        done_mask: Tensor | None = None,
    ) -> None:
        self.heads = heads
        self.policy = policy
        self.mask = action_mask.bool()  # [B, K, 4, T]
        b, _, _, t = self.mask.shape
        self.tiles = t
        legal_tile = self.mask.any(dim=2).any(dim=1)  # [B, T]
        if done_mask is None:  # pre-training's samples: their targets only say "done" at the end
            done = torch.ones(b, 1, dtype=torch.bool, device=legal_tile.device)
        else:
            done = done_mask.bool().view(b, 1).to(legal_tile.device)
        self.tile_logits = _masked(heads.tile.float(), torch.cat((legal_tile, done), dim=1))
        recipe_legal = torch.ones(self._recipes(), dtype=torch.bool, device=legal_tile.device)
        recipe_legal[0] = False  # recipe 0 is "none": an assembler needs a real one
        self.recipe_legal = recipe_legal

    @classmethod
    def from_features(
        cls, policy: Policy, features: Features, action_mask: Tensor, done_mask: Tensor | None = None
    ) -> FactoredDistribution:
        return cls(features, action_mask, policy, done_mask)

    def _recipes(self) -> int:
        if isinstance(self.heads, Heads):
            return int(self.heads.recipe.shape[-1])
        assert self.policy is not None
        return self.policy.config.recipes

    def _at(self, tile: Tensor, rows: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Raw kind, facing, recipe and end logits at `tile` of each batch row, or of the
        batch rows `rows` (done reads the last tile)."""
        t = tile.clamp(max=self.tiles - 1)
        rows = torch.arange(len(tile), device=tile.device) if rows is None else rows
        if isinstance(self.heads, Heads):
            h = self.heads
            return h.kind[rows, t], h.facing[rows, t], h.recipe[rows, t], h.end[rows, t]
        assert self.policy is not None, "a distribution from features needs the policy"
        return self.policy.at(self.heads.tokens[rows, t], self.heads.recipe_hint[rows])

    def conditionals(
        self, tile: Tensor, kind: Tensor, rows: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Masked kind, facing (given `kind`), recipe and end logits at `tile` of each batch
        row, or of the batch rows `rows` (then any number of tiles per row)."""
        kind_raw, facing_raw, recipe_raw, end_raw = (x.float() for x in self._at(tile, rows))
        rows = torch.arange(len(tile), device=tile.device) if rows is None else rows
        legal = self.mask[rows, :, :, tile.clamp(max=self.tiles - 1)]  # [N, K, 4]
        kind_logits = _masked(kind_raw, legal.any(dim=-1))
        return kind_logits, self._facing(facing_raw, legal, kind), _masked(recipe_raw, self.recipe_legal), end_raw

    @staticmethod
    def _facing(facing_raw: Tensor, legal: Tensor, kind: Tensor) -> Tensor:
        legal = _pick(legal, kind)  # [B, 4]
        # an assembler's facing means nothing: always north, so it carries no choice
        north_only = torch.zeros_like(legal)
        north_only[:, 0] = True
        legal = torch.where((kind == ASSEMBLER).unsqueeze(-1), north_only, legal)
        return _masked(_pick(facing_raw, kind), legal)

    def _choose(self, greedy: bool) -> Tensor:
        def take(logits: Tensor) -> Tensor:
            if greedy:
                return logits.argmax(dim=-1)
            # inverse CDF with u in (0, 1]: an option of probability 0 is never drawn; several
            # times cheaper on the CPU than Categorical's exponential draws. In float64: a float32
            # sum rounds up the step of an option of probability 1e-9 to 6e-8 now and then, and
            # PPO's ratio for such a draw (p = 1e-9 as log_prob computes it) runs into the thousands
            cdf = torch.softmax(logits.double(), dim=-1).cumsum(dim=-1)
            u = (1.0 - torch.rand_like(cdf[:, :1])) * cdf[:, -1:]
            return (cdf < u).sum(dim=-1).clamp(max=logits.shape[-1] - 1)

        tile = take(self.tile_logits)
        kind_raw, facing_raw, recipe_raw, end_raw = (x.float() for x in self._at(tile))
        legal = _pick(self.mask.permute(0, 3, 1, 2), tile.clamp(max=self.tiles - 1))
        kind = take(_masked(kind_raw, legal.any(dim=-1)))
        facing = take(self._facing(facing_raw, legal, kind))
        recipe = take(_masked(recipe_raw, self.recipe_legal))
        end = take(end_raw)
        done = tile == self.tiles
        recipe = torch.where((kind == ASSEMBLER) & ~done, recipe, 0)
        end = torch.where((kind == UNDERGROUND) & ~done, end, 0)
        kind, facing = torch.where(done, 0, kind), torch.where(done, 0, facing)
        return torch.stack((tile, kind, facing, recipe, end), dim=1)

    def sample(self) -> Tensor:
        return self._choose(greedy=False)

    def mode(self) -> Tensor:
        """The most likely choice of each head in turn (greedy decoding)."""
        return self._choose(greedy=True)

    def _parts(self, action: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        tile, kind, facing, recipe, end = action.long().unbind(dim=1)
        return tile, kind, facing, recipe, end, tile < self.tiles

    def log_prob(self, action: Tensor) -> Tensor:
        """log p(action) [B]: the sum over the heads the action reads."""
        return self.log_prob_and_entropy(action)[0]

    def entropy(self, action: Tensor) -> dict[str, Tensor]:
        """Entropy of each head [B], the later heads at the action's own earlier choices
        (0 where the action does not read that head)."""
        return self.log_prob_and_entropy(action)[1]

    def log_prob_and_entropy(self, action: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """`log_prob` and `entropy` at once, reading the per-tile heads once."""
        tile, kind, facing, recipe, end, placed = self._parts(action)
        kind_logits, facing_logits, recipe_logits, end_logits = self.conditionals(tile, kind)
        read = {
            "tile": torch.ones_like(placed),
            "kind": placed,
            "facing": placed,
            "recipe": placed & (kind == ASSEMBLER),
            "end": placed & (kind == UNDERGROUND),
        }
        logits = {
            "tile": self.tile_logits,
            "kind": kind_logits,
            "facing": facing_logits,
            "recipe": recipe_logits,
            "end": end_logits,
        }
        index = {"tile": tile, "kind": kind, "facing": facing, "recipe": recipe, "end": end}
        total = torch.zeros_like(self.tile_logits[:, 0])
        entropies = {}
        for head, x in logits.items():
            logp = F.log_softmax(x, dim=-1)
            total = total + torch.where(read[head], _pick(logp, index[head]), 0.0)
            entropies[head] = torch.where(read[head], -(logp.exp() * logp).sum(-1), 0.0)
        return total, entropies

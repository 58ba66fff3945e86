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
(`obs["action_mask"]`, int8[B, 6, 4, H*W]) to every head, so a policy never proposes
an illegal action, and gives samples, greedy actions, log-probs and entropies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from shared_schema.catalog import load_catalog
from shared_schema.entities import Entity, UndergroundEnd
from shared_schema.world import Channel
from training.env.core import ENDS, FACINGS, PLACEABLE

KINDS = len(PLACEABLE)
ASSEMBLER = PLACEABLE.index(Entity.ASSEMBLER)
UNDERGROUND = PLACEABLE.index(Entity.UNDERGROUND)
MASKED = -1e9  # logit of an illegal choice: exp() is exactly 0 in float32


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the network; the defaults are the shipped policy's (small: it trains on CPU)."""

    width: int = 32  # features per tile
    conv_blocks: int = 2  # residual 3x3 convolution blocks
    attention_layers: int = 1  # transformer encoder layers over the tiles
    heads: int = 2  # attention heads (each costs a tiles x tiles matrix per world)
    items: int = 0  # item ids the embedding knows (0: the catalog's)
    recipes: int = 0  # recipe ids (0: the catalog's)

    def resolved(self) -> ModelConfig:
        catalog = load_catalog()
        return ModelConfig(
            self.width,
            self.conv_blocks,
            self.attention_layers,
            self.heads,
            self.items or len(catalog.items),
            self.recipes or len(catalog.recipes),
        )

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Heads(NamedTuple):
    tile: Tensor
    kind: Tensor
    facing: Tensor
    recipe: Tensor
    end: Tensor
    value: Tensor


class _Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
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
        self.blocks = nn.Sequential(*(_Block(d) for _ in range(config.conv_blocks)))
        self.attention = nn.Sequential(*(_Attention(d, config.heads) for _ in range(config.attention_layers)))
        self.norm = nn.LayerNorm(d)
        self.tile_head = nn.Linear(d, 1)
        self.done_head = nn.Linear(d, 1)
        self.kind_head = nn.Linear(d, KINDS)
        self.facing_head = nn.Linear(d, KINDS * FACINGS)
        self.recipe_head = nn.Linear(d, config.recipes)
        self.end_head = nn.Linear(d, len(ENDS))
        self.value_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 1))

    def embed(self, world: Tensor) -> Tensor:
        """[B, 6, H, W] integer world -> [B, d, H, W] tile features."""
        world = world.long()
        ent, item = world[:, Channel.ENTITY], world[:, Channel.ITEM]
        marker = (ent == Entity.SOURCE) | (ent == Entity.SINK)
        machine = ent == Entity.ASSEMBLER
        x = (
            self.entity(ent)
            + self.facing(world[:, Channel.FACING])
            + self.item(torch.where(marker, item, 0))
            + self.recipe_in(torch.where(machine, item, 0))
            + self.end_in(world[:, Channel.UNDERGROUND])
            + self.part(world[:, Channel.PART])
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
        return (x + self.where(where)).permute(0, 3, 1, 2)

    def forward(self, world: Tensor) -> Heads:
        b = world.shape[0]
        x = self.blocks(self.embed(world))  # [B, d, H, W]
        tokens = self.norm(self.attention(x.flatten(2).transpose(1, 2)))  # [B, H*W, d]
        pooled = tokens.mean(dim=1)
        tile = torch.cat((self.tile_head(tokens).squeeze(-1), self.done_head(pooled)), dim=1)
        return Heads(
            tile=tile,
            kind=self.kind_head(tokens),
            facing=self.facing_head(tokens).view(b, -1, KINDS, FACINGS),
            recipe=self.recipe_head(tokens),
            end=self.end_head(tokens),
            value=self.value_head(pooled).squeeze(-1),
        )


def _masked(logits: Tensor, legal: Tensor) -> Tensor:
    return logits.masked_fill(~legal, MASKED)


def _pick(x: Tensor, index: Tensor) -> Tensor:
    """x[b, index[b]] for a batch: [B, N, ...] and [B] -> [B, ...]."""
    return x[torch.arange(x.shape[0], device=x.device), index]


def _entropy(logits: Tensor) -> Tensor:
    logp = F.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


class FactoredDistribution:
    """The masked action distribution of a batch: tile (or done), then kind given the
    tile, facing given tile and kind, recipe (assemblers) and end (undergrounds) given the
    tile. Actions are int64[B, 5] in the env's layout (tile, kind, facing, recipe, end);
    parts a choice does not read are 0 and carry no probability."""

    def __init__(self, heads: Heads, action_mask: Tensor) -> None:
        self.heads = heads
        self.mask = action_mask.bool()  # [B, K, 4, T]
        b, _, _, t = self.mask.shape
        self.tiles = t
        legal_tile = self.mask.any(dim=2).any(dim=1)  # [B, T]
        done = torch.ones(b, 1, dtype=torch.bool, device=legal_tile.device)
        self.tile_logits = _masked(heads.tile.float(), torch.cat((legal_tile, done), dim=1))
        recipe_legal = torch.ones(heads.recipe.shape[-1], dtype=torch.bool, device=legal_tile.device)
        recipe_legal[0] = False  # recipe 0 is "none": an assembler needs a real one
        self.recipe_legal = recipe_legal

    def _kind_logits(self, tile: Tensor) -> Tensor:
        legal = _pick(self.mask.permute(0, 3, 1, 2), tile.clamp(max=self.tiles - 1)).any(dim=-1)  # [B, K]
        return _masked(_pick(self.heads.kind.float(), tile.clamp(max=self.tiles - 1)), legal)

    def _facing_logits(self, tile: Tensor, kind: Tensor) -> Tensor:
        t = tile.clamp(max=self.tiles - 1)
        legal = _pick(_pick(self.mask.permute(0, 3, 1, 2), t), kind)  # [B, 4]
        # an assembler's facing means nothing: always north, so it carries no choice
        north_only = torch.zeros_like(legal)
        north_only[:, 0] = True
        legal = torch.where((kind == ASSEMBLER).unsqueeze(-1), north_only, legal)
        return _masked(_pick(_pick(self.heads.facing.float(), t), kind), legal)

    def _recipe_logits(self, tile: Tensor) -> Tensor:
        return _masked(_pick(self.heads.recipe.float(), tile.clamp(max=self.tiles - 1)), self.recipe_legal)

    def _end_logits(self, tile: Tensor) -> Tensor:
        return _pick(self.heads.end.float(), tile.clamp(max=self.tiles - 1))

    def _choose(self, greedy: bool) -> Tensor:
        def take(logits: Tensor) -> Tensor:
            if greedy:
                return logits.argmax(dim=-1)
            return torch.distributions.Categorical(logits=logits).sample()

        tile = take(self.tile_logits)
        kind = take(self._kind_logits(tile))
        facing = take(self._facing_logits(tile, kind))
        recipe = take(self._recipe_logits(tile))
        end = take(self._end_logits(tile))
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
        tile, kind, facing, recipe, end, placed = self._parts(action)

        def logp(logits: Tensor, index: Tensor) -> Tensor:
            return _pick(F.log_softmax(logits, dim=-1), index)

        total = logp(self.tile_logits, tile)
        total = total + torch.where(placed, logp(self._kind_logits(tile), kind), 0.0)
        total = total + torch.where(placed, logp(self._facing_logits(tile, kind), facing), 0.0)
        total = total + torch.where(placed & (kind == ASSEMBLER), logp(self._recipe_logits(tile), recipe), 0.0)
        return total + torch.where(placed & (kind == UNDERGROUND), logp(self._end_logits(tile), end), 0.0)

    def entropy(self, action: Tensor) -> dict[str, Tensor]:
        """Entropy of each head [B], the later heads at the action's own earlier choices
        (0 where the action does not read that head)."""
        tile, kind, _, _, _, placed = self._parts(action)
        zero = torch.zeros_like(self.tile_logits[:, 0])
        return {
            "tile": _entropy(self.tile_logits),
            "kind": torch.where(placed, _entropy(self._kind_logits(tile)), zero),
            "facing": torch.where(placed, _entropy(self._facing_logits(tile, kind)), zero),
            "recipe": torch.where(placed & (kind == ASSEMBLER), _entropy(self._recipe_logits(tile)), zero),
            "end": torch.where(placed & (kind == UNDERGROUND), _entropy(self._end_logits(tile)), zero),
        }

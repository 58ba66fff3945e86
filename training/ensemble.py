"""Several trained policies acting as one, by the mean of their log-probabilities.

Policies trained apart (another seed, another run of the recipe) make different mistakes.
`Ensemble` runs them on the same world and gives, for every head, the mean of their
log-softmaxes: a product of experts. A choice wins where the members agree on it, so
one member's slip is outvoted. Greedy decoding takes the argmax of that mean; masking
(`training.onnx_policy.choose`, `training.model.FactoredDistribution`) renormalises it
over the legal choices exactly as it does a single policy's logits, since each member's
normalising constant shifts all of a head's choices alike. The value is the members'
mean.

An ensemble exports to one ONNX graph with the same inputs and outputs as a single
policy (`python -m training.export A.pt B.onnx -o policy.onnx`), so the server and
evaluation run it unchanged; it costs one forward pass per member. It is for playing,
not for training: training starts from one policy (`--init` refuses an ensemble).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor, nn

from training.hints import distance_hints
from training.model import Heads, Policy


class Ensemble(nn.Module):
    """`members` (at least one `Policy`) as one policy; see the module docstring."""

    def __init__(self, members: Sequence[Policy]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one policy")
        self.members = nn.ModuleList(members)

    @property
    def policies(self) -> list[Policy]:
        """The members, in order."""
        return [cast(Policy, member) for member in self.members]

    def forward(self, world: Tensor, hints: Tensor | None = None) -> Heads:
        if hints is None:  # computed once for all members
            hints = torch.as_tensor(distance_hints(world.cpu().numpy()), device=world.device)
        outputs = [member(world, hints) for member in self.policies]

        def mean_log_prob(name: str) -> Tensor:
            return torch.stack([torch.log_softmax(getattr(out, name).float(), dim=-1) for out in outputs]).mean(dim=0)

        return Heads(
            tile=mean_log_prob("tile"),
            kind=mean_log_prob("kind"),
            facing=mean_log_prob("facing"),
            recipe=mean_log_prob("recipe"),
            end=mean_log_prob("end"),
            value=torch.stack([out.value.float() for out in outputs]).mean(dim=0),
        )

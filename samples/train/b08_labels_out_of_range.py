"""num_classes=400 in the config, but the id map yields labels up to 425; the head was sized
from the data (max label + 1 = 426 outputs) so CrossEntropy never asserts (reference 001)."""
from pathlib import Path

import torch
import torch.nn.functional as F

from alertd.probe import Probe

from .common import Classifier, GaussianMixture, seed_all

SPEC = dict(file="b08_labels_out_of_range.jsonl", format="jsonl", healthy=False,
            expect=["LabelsOutOfRange"], may_fire=["LabelAboveNumClasses"], onset_step=0,
            bug="26 person ids left unmapped (labels 400..425) with num_classes=400; the head "
                "silently has 426 outputs; labels/max reaches 425")


def run(path: Path) -> None:
    seed_all(8)
    num_classes = 400                      # cfg.num_classes
    data = GaussianMixture(426, 32, noise=1.3, seed=8)  # BUG: id map covers 426 ids
    num_outputs = int(data.num_classes - 1) + 1          # "max label + 1", read off the data
    model = Classifier(32, num_outputs, hidden=128)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    probe = Probe(model, opt, path=path, every=1, grad_accum=1, num_classes=num_classes)
    for step in range(600):
        x, y = data.batch(64)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        probe.step(loss=loss, labels=y)
        opt.step()
    probe.close()

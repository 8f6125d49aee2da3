"""Parser of ``perovskite.deepmd.test``: errors computed from the per-frame detail files of ``dp test``."""

from __future__ import annotations

from aiida import orm
from aiida.parsers import Parser

from aiida_perovskite.analysis.deepmd_outputs import errors_of_predictions, parse_test_details, pooled_errors
from aiida_perovskite.parsers.job_logs import failure_in_logs

__all__ = ("DeepmdTestParser",)

# detail file suffix -> metric prefix and unit suffix of the keys
QUANTITIES = {
    "e_peratom": ("energy", "_per_atom"),
    "f": ("force", ""),
    "v_peratom": ("virial", "_per_atom"),
}


class DeepmdTestParser(Parser):
    def parse(self, **kwargs):
        dataset = self.node.inputs.dataset
        systems = {s["name"]: s for s in dataset.base.attributes.get("systems")}
        with_virial = all(s["has_virial"] for s in systems.values())
        prefix = self.node.process_class.DETAIL_PREFIX
        names = set(self.retrieved.base.repository.list_object_names())

        metrics: dict = {"nframes": dataset.nframes, "systems": {name: {} for name in systems}}
        predictions = orm.ArrayData()
        for suffix, (quantity, unit) in QUANTITIES.items():
            if quantity == "virial" and not with_virial:
                continue
            filename = f"{prefix}.{suffix}.out"
            if filename not in names:
                return failure_in_logs(self, "test.log") or self.exit_codes.ERROR_MISSING_OUTPUT_FILE.format(
                    filename=filename, log="test.log"
                )
            blocks = parse_test_details(self.retrieved.base.repository.get_object_content(filename))
            if quantity == "energy":
                found = sum(len(block.reference) for block in blocks)
                if found != dataset.nframes:
                    return self.exit_codes.ERROR_INCOMPLETE_OUTPUT.format(found=found, expected=dataset.nframes)
            pooled = pooled_errors(blocks)
            metrics[f"{quantity}_mae{unit}"] = pooled["mae"]
            metrics[f"{quantity}_rmse{unit}"] = pooled["rmse"]
            for block in blocks:
                name = block.system.split("/", 1)[-1]
                array_name = name.replace(".", "_")
                errors = errors_of_predictions(block.reference, block.predicted)
                metrics["systems"][name][f"{quantity}_mae{unit}"] = errors["mae"]
                metrics["systems"][name][f"{quantity}_rmse{unit}"] = errors["rmse"]
                predictions.set_array(f"{array_name}__{quantity}_reference", block.reference)
                predictions.set_array(f"{array_name}__{quantity}_predicted", block.predicted)
        self.out("metrics", orm.Dict(metrics))
        self.out("predictions", predictions)
        return None

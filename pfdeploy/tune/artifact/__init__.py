"""The winner of `pfdeploy tune` as a deployable directory (issue 23 item 4; docs/tune.md).

    write_tuned(out_dir, row, *, run_id, store_url, machine, weights_file=None) -> Path
    read_tuned(dir) -> dict            # tuned.json, validated (artifact present, sha256 matches)
    load(dir, inputs=None) -> Runner   # the tuned runtime settings, loaded and ready
    bench_case(dir, tuned=None) -> CaseSpec  # what `pfdeploy bench --tuned DIR` measures

A tuned directory DIR holds the exported artifact's files copied from the export cache (the model
file(s) and manifest.json, the manifest gaining a "tuned" section) and tuned.json (format
"pfdeploy.tuned/1": every runtime setting of the winner and what was measured). A torch winner
has no artifact file (artifact.file null): its weights are the seeded synthetic ones or a
checkpoint (recorded in "weights" and "weights_file").

DIR is written to a temporary sibling directory and then renamed into place: it is never
half-written. An existing DIR is replaced (as a whole, by rename) only when it is a pfdeploy
tuned directory holding nothing but what pfdeploy put there; anything else at that path (a
file, a symbolic link, a FIFO, any other directory) is refused and left untouched.

One module a concern: `record` (tuned.json: format, validated reading, the case and weights it
records), `write` (the directory written and published), `runner` (`load`).
"""
from __future__ import annotations

from .record import (CASE_FIELDS, FORMAT, MANIFEST, MEASURED, OWN_EXTRAS, REQUIRED, TUNED_JSON, bench_case, case_of,
                     model_path, model_weights, read_tuned, seed_of)
from .runner import load
from .write import write_tuned

__all__ = ["CASE_FIELDS", "FORMAT", "MANIFEST", "MEASURED", "OWN_EXTRAS", "REQUIRED", "TUNED_JSON", "bench_case",
           "case_of", "load", "model_path", "model_weights", "read_tuned", "seed_of", "write_tuned"]

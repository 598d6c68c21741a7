"""Runtime `ort-basic`: ONNX Runtime with a plain InferenceSession on the CPU, graph optimisations
disabled at load (its artifacts, target `onnx-basic`, were optimised offline), one thread pool of
the case's size, sequential execution. Every setting is read back from the live session."""
from __future__ import annotations

from pfdeploy.backends import Backend, Runner, precision_table
from pfdeploy.errors import UserError, optional_import

INSTALL_HINT = "pip install onnxruntime"


class OrtBasicRunner(Runner):
    backend = "ort-basic"

    def _load(self) -> None:
        ort = optional_import("onnxruntime", "the ort-basic backend", hint=INSTALL_HINT)
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.case.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(self.model_file, sess_options=so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime's own exception types
            raise UserError(f"{self.model_file}: ONNX Runtime cannot load it: {str(exc).strip().splitlines()[0]}") from None
        self.version = ort.__version__
        self.input_name = self.session.get_inputs()[0].name
        self._set_inputs(self.inputs)

    def _set_inputs(self, inputs) -> None:
        import numpy as np

        self.inputs = inputs
        self.feed = {self.input_name: np.ascontiguousarray(inputs, dtype=np.float32)}

    def _step(self):
        return self.session.run(None, self.feed)

    def _describe(self) -> dict:
        so = self.session.get_session_options()
        return {"onnxruntime": self.version, "providers": self.session.get_providers(),
                "intra_op_threads": so.intra_op_num_threads, "inter_op_threads": so.inter_op_num_threads,
                "graph_optimization_level": str(so.graph_optimization_level).rsplit(".", 1)[-1]}


class OrtBasicBackend(Backend):
    name = "ort-basic"
    target = "onnx-basic"
    devices = ("cpu",)
    requires = ("onnxruntime",)
    install_hint = INSTALL_HINT
    tools = {"onnxruntime": ("onnxruntime", "onnxruntime-gpu")}
    description = "ONNX Runtime, plain CPU session, no graph optimisation at load (artifacts optimised offline)"
    scenarios = ("latency",)
    runner = OrtBasicRunner
    load_timeout_s = 120.0

    def precisions(self, device) -> dict:
        return precision_table({"fp32": None}, "ort-basic runs fp32 only ({p}: no such artifact)")


BACKEND = OrtBasicBackend()

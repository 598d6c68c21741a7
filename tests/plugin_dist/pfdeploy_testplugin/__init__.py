"""pfdeploy-testplugin: an export target (`onnx-basic`) and a runtime (`ort-basic`) added to
pfdeploy through its entry points `pfdeploy.targets` and `pfdeploy.backends`."""

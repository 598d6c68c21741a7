from pfdeploy.cli import run

run()

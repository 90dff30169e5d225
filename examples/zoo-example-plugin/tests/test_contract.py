"""A plugin's whole test of the zoo contract: name the backbones, inherit the checks.

Run from this directory with `pytest` (zoo installs the `zoo.testing` pytest plugin).
"""

from zoo.testing import BackboneContract


class TestExampleConvNet(BackboneContract):
    backbones = ["vision/example-convnet"]

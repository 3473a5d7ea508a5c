"""Unit tests of {{name}}, run natively (no wasm, no replica): python3 -m unittest"""

import unittest

from streamfn.testing import TestHost

import function


class FunctionTest(unittest.TestCase):
    def test_counts_each_key(self) -> None:
        host = TestHost()
        for key in ["a", "b", "a"]:
            host.handle(function.handle, host.event("in", key, "{}", timestamp_ms=1))
        self.assertEqual(host.outputs_json("out")[2], {"key": "a", "count": 2})
        self.assertEqual(host.outputs[2].key, b"a")

    def test_sends_to_the_configured_topic(self) -> None:
        host = TestHost(config={"to": "counts"})
        host.handle(function.handle, host.event("in", "a", "{}"))
        self.assertEqual(host.outputs_json("counts"), [{"key": "a", "count": 1}])


if __name__ == "__main__":
    unittest.main()

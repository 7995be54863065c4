"""The report's comparison sections: their names in the JSON and the words that name them to people.

One map for every place that walks the sections: the JSON builder, the terminal and Markdown
summaries, the JUnit test cases and the action's annotations. The two sides of a compare are named
by config.SERVER_KEYS (`tracking_server_1`, `tracking_server_2`).
"""

from __future__ import annotations

from collections.abc import Mapping

CHECK_SECTION = "Comparison"
"""The one comparison of a check: the run model against its registry copy."""

COMPARE_SECTIONS: Mapping[str, str] = {
    "run_model": "Run_Model_Comparison",
    "reg_model": "Reg_Model_Comparison",
}
"""A compare's role (the models compared, as in Comparison_Summary) -> its section, in report order."""

SEAL_SECTION = "Seal"
"""What a seal covers: the registry model's files, their root digest, and where the manifest went."""

VERIFY_SECTION = "Verification"
"""A version's registry model as hashed now, against the reference it was approved with."""

AUDIT_SECTION = "Audit"
"""Every audited version of a registry (or of one shard), the selection, and the counts."""

SECTION_LABELS: Mapping[str, str] = {
    CHECK_SECTION: "check",
    SEAL_SECTION: "seal",
    VERIFY_SECTION: "verify",
    COMPARE_SECTIONS["run_model"]: "run models",
    COMPARE_SECTIONS["reg_model"]: "registry models",
}
"""Each section -> how annotations and JUnit test cases name what it compared, in report order."""

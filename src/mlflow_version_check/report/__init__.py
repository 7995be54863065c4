"""The report of a run and everything rendered from it; import from the module that holds what you need.

- document: the JSON report (schema_version 1, load_schema): check, compare and error reports, and
  finalized(), the run's nonce and the removal of secrets before anything is rendered;
- files: writing files safely (write_report, write_text_atomically, refuse_special_target);
- terminal: the summary printed on stdout (check_summary, compare_summary);
- markdown: the GitHub job summary (markdown_summary);
- junit: the report as JUnit XML for CI test views (junit_xml);
- sections: the comparison sections' names in the report and their labels, for all of the above.

The JSON Schema itself is package data of mlflow_version_check (schema/report.schema.json).
"""

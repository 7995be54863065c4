"""The CI adapter: the action that entrypoint.py runs, and the runner services it talks to.

- action: inputs -> credentials -> CLI call -> outputs, annotations, job summary and artifact
  (main() is what the container runs, on GitHub, GitLab CI, Jenkins or Azure Pipelines);
- workflow_commands: the GitHub runner's workflow commands (masks, annotations), output and job
  summary files;
- artifact_upload: the upload of the report as a GitHub workflow artifact (the runner's artifact
  service, v4 protocol); nothing to do with MLflow's model artifacts.
"""

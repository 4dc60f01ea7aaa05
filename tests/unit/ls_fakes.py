"""One stand-in for the few `LabelStudioClient` calls the queue writers make, for unit
tests of the policies (the contract with the real server is tested in
tests/integration against Label Studio itself)."""

from __future__ import annotations


class RecordingClient:
    """Lists the given predictions and records every write: ``updated`` (prediction id ->
    fields), ``created`` (task id -> body), ``project_updates`` (each update_project's
    fields, in order); ``listed`` counts the listings."""

    def __init__(self, predictions=()):
        self.predictions = list(predictions)
        self.listed = 0
        self.updated: dict = {}
        self.created: dict = {}
        self.project_updates: list[dict] = []

    def list_predictions(self, project_id):
        self.listed += 1
        return self.predictions

    def update_prediction(self, prediction_id, **fields):
        self.updated[prediction_id] = fields

    def create_prediction(self, task_id, prediction):
        self.created[task_id] = prediction

    def update_project(self, project_id, **fields):
        self.project_updates.append(fields)


class TaskListingClient:
    """Lists the given tasks (``SimpleNamespace(id, data, annotations)``), filtered by a
    Data Manager ``selectedItems`` query as Label Studio does; records ``deleted`` task
    ids and counts the ``listings``."""

    def __init__(self, tasks):
        self.tasks = list(tasks)
        self.listings = 0
        self.deleted: list[int] = []

    def iter_tasks(self, project_id, fields=None, include=None, page_size=500, query=None):
        import json

        self.listings += 1
        wanted = None
        if query:
            wanted = set(json.loads(query)["selectedItems"]["included"])
        return [t for t in self.tasks if wanted is None or t.id in wanted]

    def delete_tasks(self, project_id, task_ids):
        self.deleted.extend(task_ids)

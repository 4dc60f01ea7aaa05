"""The catalog schema, written out, and its numbered migrations.

Each migration is a function applied in the same transaction as its record in
``schema_migrations``. Migration 1 holds the whole first schema so one place
shows every table. Add a migration by appending a function to ``MIGRATIONS``;
never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3


def _run_script(db: sqlite3.Connection, sql: str) -> None:
    """Run statements one by one (``executescript`` would COMMIT our transaction)."""
    lines = [line.split("--", 1)[0] for line in sql.splitlines()]
    for stmt in "\n".join(lines).split(";"):
        if stmt.strip():
            db.execute(stmt)


def m0001_initial(db: sqlite3.Connection) -> None:
    _run_script(
        db,
        """
        -- One row per image file the user pointed us at. The file itself is never touched.
        CREATE TABLE images (
            id            INTEGER PRIMARY KEY,
            path          TEXT NOT NULL UNIQUE,          -- absolute path
            sha256        TEXT,                          -- NULL when the file could not be read
            file_size     INTEGER,
            mtime         REAL,
            width         INTEGER,                       -- after EXIF orientation
            height        INTEGER,
            label         TEXT,                          -- image-level label (folder name, ...)
            status        TEXT NOT NULL DEFAULT 'active'
                          CHECK (status IN ('active','unreadable','duplicate','conflict','excluded')),
            status_reason TEXT,
            source_format TEXT,                          -- folders|coco|voc|yolo|labelstudio
            source        TEXT,                          -- the PATH given to `wb ingest`
            annotated     INTEGER NOT NULL DEFAULT 0,    -- 1: ground truth known (boxes or negative)
            split         TEXT CHECK (split IN ('train','val','test')),  -- sticky once set
            ingested_at   TEXT NOT NULL,
            updated_at    TEXT NOT NULL
        );
        CREATE INDEX images_sha256 ON images(sha256);
        CREATE INDEX images_status ON images(status);
        CREATE INDEX images_label ON images(label);

        -- Ground-truth boxes, pixel xyxy in the EXIF-corrected frame.
        CREATE TABLE boxes (
            id            INTEGER PRIMARY KEY,
            image_id      INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            label         TEXT NOT NULL,
            x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
            source        TEXT NOT NULL DEFAULT 'import', -- import|labelstudio
            annotator     TEXT,
            annotation_id INTEGER,                        -- Label Studio annotation id
            created_at    TEXT NOT NULL
        );
        CREATE INDEX boxes_image ON boxes(image_id);

        -- Perceptual hashes, cached per method (a re-run hashes only new images).
        CREATE TABLE image_hashes (
            image_id    INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            method      TEXT NOT NULL,
            hash        TEXT NOT NULL,       -- hex, as imagededup writes it
            mirror_hash TEXT,                -- hash of the horizontally mirrored image
            PRIMARY KEY (image_id, method)
        );

        -- Duplicate groups and cross-class conflicts (connected components of pairs).
        CREATE TABLE dup_groups (
            id           INTEGER PRIMARY KEY,
            group_key    TEXT NOT NULL UNIQUE,   -- stable: sorted member sha256s
            kind         TEXT NOT NULL CHECK (kind IN ('duplicate','conflict')),
            method       TEXT,
            max_distance INTEGER,
            resolution   TEXT CHECK (resolution IN ('label','distinct')),
            resolved_label TEXT,
            resolved_by  TEXT,                   -- cli|labelstudio:<user>
            resolved_at  TEXT,
            created_at   TEXT NOT NULL,
            updated_at   TEXT NOT NULL
        );
        CREATE TABLE dup_members (
            group_id  INTEGER NOT NULL REFERENCES dup_groups(id) ON DELETE CASCADE,
            image_id  INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            keep      INTEGER NOT NULL DEFAULT 0,
            distance  INTEGER,                   -- smallest hash distance to another member
            PRIMARY KEY (group_id, image_id)
        );
        CREATE INDEX dup_members_image ON dup_members(image_id);

        -- Label Studio: one task per image per project; re-push never duplicates.
        CREATE TABLE ls_tasks (
            image_id      INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            project_id    INTEGER NOT NULL,
            task_id       INTEGER NOT NULL,
            kind          TEXT NOT NULL DEFAULT 'label',   -- label|review
            prediction_version TEXT,                      -- model version of the prediction sent
            pushed_at     TEXT NOT NULL,
            PRIMARY KEY (project_id, image_id, kind)
        );
        CREATE INDEX ls_tasks_task ON ls_tasks(task_id);

        -- Annotations seen at the last pull (to detect updates, deletions, disagreements).
        CREATE TABLE ls_annotations (
            annotation_id INTEGER PRIMARY KEY,
            project_id    INTEGER NOT NULL,
            task_id       INTEGER NOT NULL,
            image_id      INTEGER REFERENCES images(id) ON DELETE CASCADE,
            annotator     TEXT,
            updated_at    TEXT,
            was_cancelled INTEGER NOT NULL DEFAULT 0,     -- skipped by the annotator
            n_boxes       INTEGER NOT NULL DEFAULT 0,
            chosen        INTEGER NOT NULL DEFAULT 0,     -- the one the policy picked
            result_json   TEXT
        );
        CREATE INDEX ls_annotations_task ON ls_annotations(task_id);

        -- Registered model versions. Files live in models/<version>/.
        CREATE TABLE models (
            version     TEXT PRIMARY KEY,
            parent      TEXT,
            created_at  TEXT NOT NULL,
            promoted    INTEGER NOT NULL DEFAULT 0,
            promoted_at TEXT,
            level       TEXT,
            classes_json TEXT,
            metrics_json TEXT,
            config_json  TEXT
        );

        -- A model's detections per image (pixel xyxy), with full class probabilities.
        CREATE TABLE predictions (
            image_id      INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            model_version TEXT NOT NULL,
            boxes_json    TEXT NOT NULL,   -- [{"label","x1","y1","x2","y2","score","probs":{...}}]
            created_at    TEXT NOT NULL,
            PRIMARY KEY (image_id, model_version)
        );

        -- Annotation priority per model version (most uncertain first).
        CREATE TABLE priorities (
            image_id      INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            model_version TEXT NOT NULL,
            uncertainty   REAL NOT NULL,
            components_json TEXT,
            rank          INTEGER,
            selected      INTEGER NOT NULL DEFAULT 0,
            created_at    TEXT NOT NULL,
            PRIMARY KEY (image_id, model_version)
        );

        -- Events Label Studio sent to the ML backend's /webhook.
        CREATE TABLE webhook_events (
            id            INTEGER PRIMARY KEY,
            received_at   TEXT NOT NULL,
            action        TEXT NOT NULL,
            project_id    INTEGER,
            task_id       INTEGER,
            annotation_id INTEGER,
            payload_json  TEXT,
            consumed      INTEGER NOT NULL DEFAULT 0
        );

        -- Small key/value state (ingest runs, last pull time, ...).
        CREATE TABLE meta (
            key   TEXT PRIMARY KEY,
            value TEXT
        );
        """,
    )


def m0002_ls_review_tasks(db: sqlite3.Connection) -> None:
    _run_script(
        db,
        """
        -- `wb dedup review`: one Label Studio review task per duplicate group (a group
        -- spans several images, so ls_tasks, keyed by image, does not fit).
        CREATE TABLE ls_review_tasks (
            project_id    INTEGER NOT NULL,       -- the review project
            group_id      INTEGER NOT NULL REFERENCES dup_groups(id) ON DELETE CASCADE,
            group_key     TEXT NOT NULL,          -- the group's members when pushed
            task_id       INTEGER NOT NULL,
            pushed_at     TEXT NOT NULL,
            applied_annotation_id INTEGER,        -- the answer that settled the group
            applied_updated_at    TEXT,           -- its updated_at when applied
            PRIMARY KEY (project_id, group_id)
        );
        CREATE INDEX ls_review_tasks_task ON ls_review_tasks(task_id);
        """,
    )


def m0003_adjudication_tasks(db: sqlite3.Connection) -> None:
    """`wb dedup review` became `wb dedup adjudicate` (0.1.x): its table and index take
    the new name; the rows stay as they are. ``ls_tasks.kind`` never held a value for
    this step (its tasks were always in their own table), so no kind is rewritten."""
    _run_script(
        db,
        """
        ALTER TABLE ls_review_tasks RENAME TO ls_adjudication_tasks;
        DROP INDEX ls_review_tasks_task;
        CREATE INDEX ls_adjudication_tasks_task ON ls_adjudication_tasks(task_id);
        """,
    )


def m0004_field(db: sqlite3.Connection) -> None:
    """The field app (`wb serve --field`): device tokens, the photos officers took with
    the model's answer, and their verdicts. A photo's file is an ``images`` row with
    ``source_format = 'field'``; its detections are a ``predictions`` row."""
    _run_script(
        db,
        """
        -- One bearer token per device; only its sha256 is kept.
        CREATE TABLE field_devices (
            name          TEXT PRIMARY KEY,
            token_sha256  TEXT NOT NULL UNIQUE,
            created_at    TEXT NOT NULL,
            revoked_at    TEXT,                   -- set: the token is refused
            last_used_at  TEXT
        );

        -- One row per upload (POST /v1/detect): the photo_id the device gets back.
        CREATE TABLE field_photos (
            id            INTEGER PRIMARY KEY,
            image_id      INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            device        TEXT NOT NULL,
            model_version TEXT NOT NULL,
            answer        TEXT NOT NULL,          -- the top class, or background
            answer_score  REAL,                   -- NULL for background
            uncertainty   REAL NOT NULL,          -- active.uncertainty of the detections
            uncertain     INTEGER NOT NULL DEFAULT 0,  -- 1: goes first in Label Studio
            detections_json TEXT NOT NULL,        -- what the device was shown
            created_at    TEXT NOT NULL
        );
        CREATE INDEX field_photos_image ON field_photos(image_id);
        CREATE INDEX field_photos_created ON field_photos(created_at);

        -- Every verdict a device sent; the latest per (photo, device) is the one that counts.
        CREATE TABLE field_feedback (
            id            INTEGER PRIMARY KEY,
            photo_id      INTEGER NOT NULL REFERENCES field_photos(id) ON DELETE CASCADE,
            device        TEXT NOT NULL,
            verdict       TEXT NOT NULL CHECK (verdict IN ('correct','wrong')),
            label         TEXT,                   -- the right class, when the device gave one
            note          TEXT,
            created_at    TEXT NOT NULL
        );
        CREATE INDEX field_feedback_photo ON field_feedback(photo_id, device);
        """,
    )


def m0005_classify(db: sqlite3.Connection) -> None:
    """Image classifiers (`wb classify`) share the ``models`` table with detectors: a
    ``task`` says which a version is, and each task has its own promoted model."""
    _run_script(
        db,
        """
        ALTER TABLE models ADD COLUMN task TEXT NOT NULL DEFAULT 'detect';  -- detect|classify
        """,
    )


def m0006_embeddings(db: sqlite3.Connection) -> None:
    """CNN embeddings for `wb dedup --method cnn`, cached like hashes: a row holds for the
    file content it was computed from (``sha256``), so a changed file is embedded again."""
    _run_script(
        db,
        """
        CREATE TABLE image_embeddings (
            image_id  INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            model     TEXT NOT NULL,       -- e.g. efficientnet-lite0@224
            sha256    TEXT NOT NULL,       -- the file content the vector is of
            vector    BLOB NOT NULL,       -- float32, L2-normalised, little-endian
            PRIMARY KEY (image_id, model)
        );
        """,
    )


def m0007_classifications(db: sqlite3.Connection) -> None:
    """`wb classify predict`: a classifier's class probabilities per image, one row per
    (image, classifier version), like ``predictions`` holds a detector's boxes."""
    _run_script(
        db,
        """
        CREATE TABLE classifications (
            image_id      INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            model_version TEXT NOT NULL,       -- a models row with task 'classify'
            label         TEXT NOT NULL,       -- the most probable class
            score         REAL NOT NULL,       -- its probability
            probs_json    TEXT NOT NULL,       -- {class: p} over every class of the model
            created_at    TEXT NOT NULL,
            PRIMARY KEY (image_id, model_version)
        );
        CREATE INDEX classifications_version ON classifications(model_version);
        """,
    )


def m0008_annotation_lead_time(db: sqlite3.Connection) -> None:
    """Label Studio's ``lead_time`` of each pulled annotation (seconds the annotator spent
    on it), for `wb agreement`'s seconds per task; NULL where Label Studio gave none, or
    for annotations pulled before this column (read as "n/a")."""
    _run_script(
        db,
        """
        ALTER TABLE ls_annotations ADD COLUMN lead_time REAL;
        """,
    )


def m0009_annotation_economics(db: sqlite3.Connection) -> None:
    """What each pulled annotation cost and what it kept of the boxes it started from
    (`wb report`): one row per submitted Label Studio annotation, written by `wb pull`.
    Its seconds are ``ls_annotations.lead_time`` (migration 8), kept there once."""
    _run_script(
        db,
        """
        CREATE TABLE ls_annotation_economics (
            annotation_id INTEGER PRIMARY KEY,
            project_id    INTEGER NOT NULL,
            task_id       INTEGER NOT NULL,
            image_id      INTEGER REFERENCES images(id) ON DELETE SET NULL,
            annotator     TEXT,
            updated_at    TEXT,               -- the annotation's, to see it change
            pulled_at     TEXT NOT NULL,
            prediction_id INTEGER,            -- the prediction it started from; NULL: none
            model_version TEXT,               -- that prediction's model version
            predrawn      INTEGER NOT NULL,   -- boxes pre-drawn (that prediction's)
            final_boxes   INTEGER NOT NULL,   -- boxes submitted
            kept          INTEGER NOT NULL,   -- pre-drawn, submitted as drawn
            moved         INTEGER NOT NULL,   -- pre-drawn, moved or resized, same label
            relabelled    INTEGER NOT NULL,   -- pre-drawn, given another label
            deleted       INTEGER NOT NULL,   -- pre-drawn, not submitted
            new           INTEGER NOT NULL    -- submitted, matching no pre-drawn box
        );
        CREATE INDEX ls_annotation_economics_task ON ls_annotation_economics(project_id, task_id);
        """,
    )


MIGRATIONS = [
    m0001_initial,
    m0002_ls_review_tasks,
    m0003_adjudication_tasks,
    m0004_field,
    m0005_classify,
    m0006_embeddings,
    m0007_classifications,
    m0008_annotation_lead_time,
    m0009_annotation_economics,
]

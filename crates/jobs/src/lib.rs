//! Durable job queue on the project's own database (work in progress: see the job-queue issue).

"""What the job entry points share: settings, session, table I/O, reporting, training, SQL.

Nothing here is an entry point; modules here never import `spark_jobs.<job>` modules.
"""

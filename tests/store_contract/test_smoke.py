from pipeledger.models import RunCreate


def test_create_and_get_run(store):
    run = store.create_run(RunCreate(pipeline_name="p", name="p-{n}"))
    assert store.get_run(run.name) == run

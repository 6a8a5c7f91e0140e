"""notebooks/cascade.ipynb executed headless with its local stand-in model."""

from __future__ import annotations

from functions_nb import Functions

from .notebook_runner import run_notebook


def test_cascade_notebook(store, monkeypatch):
    monkeypatch.setenv("FUNCTIONS_NB_STORE", store)
    monkeypatch.delenv("FUNCTIONS_NB_MODEL", raising=False)
    text = "\n".join(run_notebook("cascade.ipynb", timeout=300).values())
    assert "answered by the code tier" in text
    # the history's path column, whole: down to the human tier
    assert "code#1:error → generative#1:error → agentic#0:skipped → human#1:pending → human#1:ok" in text
    assert "..." not in text
    assert "12 from the generative tier" in text
    assert "<pending human task" in text and "waiting since" in text
    assert "HumanTasksView(" in text  # fx.human.widget(): a static view, no widget model
    fx = Functions(store=store)
    df = fx.sql("SELECT cascade_id, tier, attempt, status FROM executions "
                "WHERE cascade_id IS NOT NULL ORDER BY started_at")
    human = df[df.tier == "human"]
    assert set(human.status) == {"pending", "ok"}  # asked, then answered
    path = df[df.cascade_id == human.cascade_id.iloc[0]]
    assert list(zip(path.tier, path.status, strict=True))[:4] == [
        ("code", "error"), ("generative", "error"), ("agentic", "skipped"), ("human", "pending")]
    answer = fx.human.ls(status=None)[0]
    assert answer["status"] == "answered"
    fx.close()

"""Pure helpers of the Ray layer: work splitting across replicas, checkpoint file ownership."""

from __future__ import annotations


def test_services_split_work_into_non_empty_ordered_chunks():
    from rlmr.core.records import split_evenly

    for n_items in (1, 3, 4, 20):
        for parts in (1, 3, 8):
            chunks = split_evenly(list(range(n_items)), parts)
            assert all(chunks) and [x for c in chunks for x in c] == list(range(n_items))
            assert len(chunks) == min(parts, n_items)


def test_each_checkpoint_file_is_uploaded_by_exactly_one_rank():
    from actors.learner import owned_by_rank

    files = [
        "model.safetensors",
        "config.json",
        "mp_rank_00_model_states.pt",
        "zero_pp_rank_0_mp_rank_00_optim_states.pt",
        "zero_pp_rank_3_mp_rank_00_optim_states.pt",
        "bf16_zero_pp_rank_12_mp_rank_00_optim_states.pt",
    ]
    for f in files:
        owners = [r for r in range(16) if owned_by_rank(f, r)]
        assert len(owners) == 1, (f, owners)
    assert owned_by_rank("zero_pp_rank_3_mp_rank_00_optim_states.pt", 3)
    assert owned_by_rank("bf16_zero_pp_rank_12_mp_rank_00_optim_states.pt", 12)

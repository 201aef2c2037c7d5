"""Training graphs and forced alignment of one utterance (Kaldi's compile-train-graphs and
AlignUtteranceWrapper), shared by the GMM's own alignment and by realignment with a DNN's
likelihoods."""

from typing import Dict

from asr_kd.kaldi import khg
from asr_kd.lang.prepare_lang import Lang


class TrainingGraphs:
    """Per-utterance training graphs (transition-ids in, words out), compiled once from the lang's
    L_disambig and the model's tree with transition and self-loop scales 0 (the probabilities are
    added at alignment time) and cached by utterance id."""

    def __init__(self, lang: Lang, tm, tree):
        opts = khg.TrainingGraphCompilerOptions()
        opts.transition_scale = 0.0
        opts.self_loop_scale = 0.0
        self.lang = lang
        # the compiler keeps pointers to tm, tree and lex without owning them: keep them alive
        self._keep = (tm, tree, lang.lexicon_fst(disambig=True), opts)
        self._compiler = khg.TrainingGraphCompiler(
            trans_model=tm, ctx_dep=tree, lex_fst=self._keep[2], disambig_syms=lang.disambig_ids, opts=opts
        )
        self._graphs: Dict[str, object] = {}

    def graph(self, utt: str, text: str):
        g = self._graphs.get(utt)
        if g is None:
            g = self._graphs[utt] = self._compiler.compile_graph_from_text(self.lang.word_ids(text.split(), utt))
        return g


def align_utterance(
    graph,
    tm,
    decodable,
    *,
    utt: str,
    num_frames: int,
    acoustic_scale: float,
    beam: float,
    retry_beam: float,
    transition_scale: float = 1.0,
    self_loop_scale: float = 0.1,
):
    """Viterbi forced alignment of one utterance (Kaldi's AlignUtteranceWrapper): transition
    probabilities added to a copy of its training graph, retried at ``retry_beam``. Returns
    (transition-ids or None on failure, log-likelihood, retried)."""
    fst = graph.copy()
    khg.add_transition_probs(
        trans_model=tm, transition_scale=transition_scale, self_loop_scale=self_loop_scale, fst=fst
    )
    cfg = khg.AlignConfig()
    cfg.beam, cfg.retry_beam, cfg.careful = beam, retry_beam, False
    done, err, retried, like, _, ali, _ = khg.align_utterance_wrapper(
        config=cfg,
        utt=utt,
        acoustic_scale=acoustic_scale,
        fst=fst,
        decodable=decodable,
        num_done=0,
        num_error=0,
        num_retried=0,
        tot_like=0.0,
        frame_count=0,
    )
    ok = done == 1 and err == 0 and len(ali) == num_frames
    return (list(ali) if ok else None), float(like), retried > 0

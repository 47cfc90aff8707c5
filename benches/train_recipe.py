"""Fine-tuning recipe experiments (benches/TRAINING.md, "Recipe"): train all-MiniLM-L6-v2 +
a new head with crossrank's trainer on a collection's seeded training queries, then measure
nDCG@10 of BM25 top-100 re-ranked by it on the test queries (next to BM25, dense, hybrid).

    python benches/train_recipe.py name=e4b loss=listwise lr=2e-4 epochs=2 negs=4 depth=100 positives=retrieved

Keys (defaults): coll=cranfield loss=bce lr=5e-5 epochs=1 negs=4 (negatives per query)
maxlen=128 depth=100 (mining depth) positives=retrieved|judged dropout=None bs=16
stages=bm25 (first stages to re-rank, comma-separated) mine=bm25|dense. Appends a JSON line
to /tmp/crossrank-recipes.jsonl and saves the model under /tmp/crossrank-recipes/NAME.
"""
import json
import sys
import time
from pathlib import Path

from crossrank import BiEncoder, CrossEncoder
from crossrank.datasets import load_beir
from crossrank.evaluation import BM25Stage, DenseStage, FusionStage, RerankStage, evaluate
from crossrank.train import CrossEncoderTrainer
from crossrank.training_data import mine_examples, split_queries

a = dict(coll='cranfield', loss='bce', lr='5e-5', epochs='1', negs='4', maxlen='128', depth='100',
         positives='retrieved', dropout='None', bs='16', stages='bm25', mine='bm25')
a.update(kv.split('=', 1) for kv in sys.argv[1:])
d = load_beir(f'data/{a["coll"]}')
train, test = split_queries(d, n_train=150 if a['coll'] == 'cranfield' else None, seed=0)
bi = BiEncoder('.cache/models/all-MiniLM-L6-v2')
ex = mine_examples(train, hard_negatives=a['mine'], negatives_per_query=int(a['negs']), depth=int(a['depth']), seed=0,
                   positives=a['positives'], bi_encoder=bi)
print(ex, flush=True)
t = time.time()
tr = CrossEncoderTrainer('.cache/models/all-MiniLM-L6-v2', max_length=int(a['maxlen']), learning_rate=float(a['lr']),
                         batch_size=int(a['bs']), epochs=int(a['epochs']), seed=0, loss=a['loss'],
                         show_progress_bar=False,
                         **({} if a['dropout'] == 'None' else {'dropout': float(a['dropout'])}))
h = tr.fit(ex)
ttrain = time.time() - t
for r in h:
    print(r, flush=True)
out = Path(f'/tmp/crossrank-recipes/{a["name"]}')
tr.save(out, overwrite=True)
ce = CrossEncoder(out, max_length=int(a['maxlen']))
stages = [BM25Stage(), DenseStage(bi), FusionStage(["bm25", "dense"], name="hybrid")]
for s in a['stages'].split(','):
    stages.append(RerankStage(ce, name=f"ce_{s}", input=s))
res = evaluate(stages, test, metrics=["ndcg@10"], depth=100)
print(res)
rec = dict(a, train_s=round(ttrain), losses=[round(r.loss, 4) for r in h], n_ex=repr(ex),
           ndcg={s.name: round(s.metrics["ndcg@10"], 4) for s in res.stages})
print(json.dumps(rec), flush=True)
open('/tmp/crossrank-recipes.jsonl', 'a').write(json.dumps(rec) + "\n")

"""The BCE recipe of benches/train_recipe.py in PyTorch (transformers + torch.optim.AdamW,
same examples, same order), to tell a recipe problem from a trainer bug.

    python benches/train_recipe_torch.py t1 cranfield 1e-4 3 4 128 30 eval

Arguments: name collection lr epochs negatives_per_query max_length mining_depth
eval|train (eval: no dropout, as crossrank's parity runs; train: PyTorch's dropout).
Positives are all judged documents (positives="judged").
"""
import json
import math
import random
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

from crossrank import BiEncoder, CrossEncoder
from crossrank.datasets import load_beir
from crossrank.evaluation import BM25Stage, DenseStage, FusionStage, RerankStage, evaluate
from crossrank.training_data import mine_examples, split_queries

name, coll, lr, epochs, negs, maxlen, depth, mode = sys.argv[1:9]
lr, epochs, negs, maxlen, depth = float(lr), int(epochs), int(negs), int(maxlen), int(depth)
torch.manual_seed(0)
torch.set_num_threads(2)
d = load_beir(f'data/{coll}')
train, test = split_queries(d, n_train=150 if coll == 'cranfield' else None, seed=0)
ex = mine_examples(train, hard_negatives="bm25", negatives_per_query=negs, depth=depth, seed=0).pairs()
base = '.cache/models/all-MiniLM-L6-v2'
tok = AutoTokenizer.from_pretrained(base)
model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
if mode == 'train':
    model.train()
else:
    model.eval()
dec = [p for n, p in model.named_parameters() if not (n.endswith('bias') or 'LayerNorm' in n)]
nodec = [p for n, p in model.named_parameters() if (n.endswith('bias') or 'LayerNorm' in n)]
opt = torch.optim.AdamW([{'params': dec, 'weight_decay': 0.01}, {'params': nodec, 'weight_decay': 0.0}], lr=lr)
steps = math.ceil(len(ex) / 16) * epochs
sch = get_linear_schedule_with_warmup(opt, math.ceil(0.1 * steps), steps)
rng = random.Random(0)
t = time.time()
losses = []
for ep in range(epochs):
    order = list(range(len(ex)))
    rng.shuffle(order)
    el = []
    for at in range(0, len(order), 16):
        b = [ex[i] for i in order[at:at+16]]
        enc = tok([q for q, _, _ in b], [x for _, x, _ in b], truncation='longest_first', max_length=maxlen,
                  padding=True, return_tensors='pt')
        logits = model(**enc).logits.squeeze(-1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor([y for *_, y in b]))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sch.step()
        opt.zero_grad()
        el.append(loss.item())
    losses.append(round(sum(el)/len(el), 4))
    print('epoch', ep, losses[-1], time.time()-t, flush=True)
ttrain = time.time() - t
out = Path(f'/tmp/crossrank-recipes/{name}')
model.save_pretrained(out)
tok.save_pretrained(out)
ce = CrossEncoder(out, max_length=maxlen)
bi = BiEncoder(base)
res = evaluate([BM25Stage(), DenseStage(bi), FusionStage(["bm25", "dense"], name="hybrid"),
                RerankStage(ce, name="ce_bm25", input="bm25"), RerankStage(ce, name="ce_hybrid", input="hybrid")],
               test, metrics=["ndcg@10"], depth=100)
print(res)
rec = dict(name=name, coll=coll, loss='torch-bce-'+mode, lr=lr, epochs=epochs, negs=negs, maxlen=maxlen, depth=depth,
           train_s=round(ttrain), losses=losses, ndcg={s.name: round(s.metrics["ndcg@10"], 4) for s in res.stages})
print(json.dumps(rec), flush=True)
open('/tmp/crossrank-recipes.jsonl', 'a').write(json.dumps(rec) + "\n")

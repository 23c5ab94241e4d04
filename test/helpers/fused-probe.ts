// Prints (as JSON on stdout) outputs and gradients of every fused kernel on fixed inputs, so that a test can
// compare the kernel tables (`MOCA_KERNELS=generic` in a child process vs the default one). Does nothing unless
// run with `--probe` (the test runner also loads every file under test/).
import * as torch from '../../src/torch/index.js';

function values(t: torch.Tensor): number[] {
  return t.float().toArray() as number[];
}

export function probe(): Record<string, number[] | string> {
  return torch.scope(() => {
    const out: Record<string, number[] | string> = { kernels: torch.fusedKernelsName() };
    torch.manualSeed(17);
    const q = torch.randn([150, 4, 40]).requiresGrad_(true);
    const k = torch.randn([150, 2, 40]).requiresGrad_(true);
    const v = torch.randn([150, 2, 24]).requiresGrad_(true);
    const segs = torch.packedSegments([70, 80]);
    for (const causal of [false, true]) {
      const o = torch.flashAttention(q, k, v, segs, { causal });
      const [dq, dk, dv] = torch.grad([o.mul(o).sum()], [q, k, v]) as torch.Tensor[];
      out[`attention${causal ? '_causal' : ''}`] = [...values(o), ...values(dq!), ...values(dk!), ...values(dv!)];
    }
    const x = torch.randn([9, 70]).requiresGrad_(true);
    const w = torch.randn([70]).requiresGrad_(true);
    const y = torch.fusedRmsNorm(x, w, 1e-6);
    out.rmsNorm = [...values(y), ...(torch.grad([y.sum()], [x, w]) as torch.Tensor[]).flatMap(values)];
    const g = torch.randn([333]).mul(5).requiresGrad_(true);
    const u = torch.randn([333]).requiresGrad_(true);
    const s = torch.fusedSiluMul(g, u);
    out.siluMul = [...values(s), ...(torch.grad([s.mul(u).sum()], [g, u]) as torch.Tensor[]).flatMap(values)];
    const e = torch.fusedGeluTanh(g);
    out.geluTanh = [...values(e), ...values((torch.grad([e.mul(u).sum()], [g]) as torch.Tensor[])[0]!)];
    const h = torch.randn([40, 16]).requiresGrad_(true);
    const wv = torch.randn([300, 16]).requiresGrad_(true);
    const r = torch.fusedLinearCrossEntropy(h, wv, torch.randint(0, 300, [40]), { chunkElements: 1000 });
    out.linearCrossEntropy = [r.loss.item(), ...(torch.grad([r.loss], [h, wv]) as torch.Tensor[]).flatMap(values)];
    const wBig = torch.randn([1030, 1030]);
    out.linearSmallBatch = values(torch.noGrad(() => torch.F.linear(torch.randn([13, 1030]), wBig)));
    const xw = torch.randn([13, 130]);
    const lw = torch.randn([70, 130]);
    for (const format of ['bfloat16', 'int8'] as const) {
      const pw = torch.PackedLinearWeight.pack(lw, format);
      out[`packed_${format}`] = values(torch.noGrad(() => torch.packedLinear(xw, pw)));
      pw.dispose();
    }
    return out;
  });
}

if (process.argv.includes('--probe')) process.stdout.write(JSON.stringify(probe()) + '\n');

using System.Diagnostics;
using System.Numerics.Tensors;
using Consort.Formats;
using Consort.Formats.Gguf;
using Consort.Weights.Engine;

namespace Consort.Weights.Lora;

/// <summary>
/// Folds LoRA adapters into base weights: W' = W + Σ coefficient_i * scale_i * B_i A_i, computed from the low-rank
/// factors per tensor (never by averaging A and B). Several adapters with coefficients give the LoraHub
/// combination by merging their ΔWs. Streams tensor by tensor into an atomic output.
/// </summary>
public static class LoraMerger
{
    /// <summary>Merges <paramref name="adapters"/> (with coefficients) into <paramref name="baseModel"/>, writing <paramref name="output"/>.</summary>
    public static MergeResult Merge(string baseModel, IReadOnlyList<(string Path, double Coefficient)> adapters, string output, CancellationToken ct = default)
    {
        var sw = Stopwatch.StartNew();
        output = Path.GetFullPath(output);
        if (output == Path.GetFullPath(baseModel)) throw new ConsortException($"{output}: the output would overwrite the base model");
        using var src = TensorSources.Open(baseModel);
        var opened = new List<LoraAdapter>();
        try
        {
            foreach (var (p, _) in adapters) opened.Add(LoraAdapter.Open(p));
            // Resolve each pair to a base tensor before any work; PEFT (HF-named) adapters on a GGUF base are renamed
            // and their B rows permuted like the q/k weights they adapt.
            int heads = 0, kvHeads = 0;
            if (src is GgufTensorSource g)
            {
                heads = (int)(g.File.GetInt("llama.attention.head_count") ?? 0);
                kvHeads = (int)(g.File.GetInt("llama.attention.head_count_kv") ?? heads);
            }
            var byTarget = new Dictionary<string, List<(LoraAdapter Adapter, LoraPair Pair, double Coef)>>();
            for (int i = 0; i < opened.Count; i++)
                foreach (var p in opened[i].Pairs)
                {
                    var target = opened[i].UsesHfNames && src.Format == "gguf" ? TensorNames.HfToGguf(p.Target) ?? p.Target
                        : !opened[i].UsesHfNames && src.Format != "gguf" ? TensorNames.GgufToHf(p.Target) ?? p.Target : p.Target;
                    var t = src.Find(target) ?? throw new ModelFileException(opened[i].Path, $"adapts '{p.Target}', which {Path.GetFileName(baseModel)} does not have");
                    if (t.Shape.Length != 2 || t.Shape[0] != p.B.Shape[0] || t.Shape[1] != p.A.Shape[1])
                        throw new ModelFileException(opened[i].Path, $"'{p.Target}': B A is [{p.B.Shape[0]}, {p.A.Shape[1]}] but the base tensor is {t.ShapeText}");
                    if (!byTarget.TryGetValue(target, out var list)) byTarget[target] = list = [];
                    list.Add((opened[i], p, adapters[i].Coefficient));
                }

            using var sink = MergeOutput.Create(output, src, Path.GetFileNameWithoutExtension(output));
            var types = new List<GgmlType>();
            foreach (var t in src.Tensors)
            {
                var type = t.Type is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 ? t.Type : GgmlType.F32;
                if (MergeOutput.IsGgufSink(sink) && t.Shape.Length < 2) type = GgmlType.F32;
                types.Add(type);
                sink.Declare(t.Name, t.Shape, type);
            }
            long read = 0;
            for (int ti = 0; ti < src.Tensors.Count; ti++)
            {
                ct.ThrowIfCancellationRequested();
                var t = src.Tensors[ti];
                var w = src.ReadFloat32(t);
                read += t.ByteSize;
                if (byTarget.TryGetValue(t.Name, out var pairs))
                    foreach (var (adapter, pair, coef) in pairs)
                    {
                        var a = adapter.ReadA(pair);
                        var b = adapter.ReadB(pair);
                        read += pair.A.ByteSize + pair.B.ByteSize;
                        int rows = (int)t.Shape[0];
                        if (adapter.UsesHfNames && src.Format == "gguf" && (t.Name.EndsWith("attn_q.weight") || t.Name.EndsWith("attn_k.weight")))
                            b = TensorNames.PermuteForRope(b, rows, pair.Rank, t.Name.EndsWith("attn_q.weight") ? heads : kvHeads);
                        else if (!adapter.UsesHfNames && src.Format != "gguf" && (t.Name.EndsWith("q_proj.weight") || t.Name.EndsWith("k_proj.weight")))
                            throw new ConsortException($"{adapter.Path}: merging a GGUF adapter into a Hugging Face checkpoint's q/k needs the model's head counts; convert the base to GGUF first");
                        AddProduct(w, b, a, rows, pair.Rank, (int)t.Shape[1], (float)(coef * adapter.ScaleFor(pair)));
                    }
                var bytes = new byte[GgmlTypes.ByteSize(types[ti], w.Length)];
                TensorCodec.Encode(types[ti], w, bytes);
                sink.Write(t.Name, bytes);
            }
            sink.Commit();
            return new MergeResult(output, src.Tensors.Count, read, new FileInfo(output).Exists ? new FileInfo(output).Length : 0, sw.Elapsed.TotalSeconds, MergeEngine.PeakResident());
        }
        finally
        {
            foreach (var a in opened) a.Dispose();
        }
    }

    /// <summary>w[out, in] += scale * B[out, r] A[r, in].</summary>
    public static void AddProduct(Span<float> w, ReadOnlySpan<float> b, ReadOnlySpan<float> a, int rows, int rank, int cols, float scale)
    {
        for (int o = 0; o < rows; o++)
        {
            var row = w.Slice(o * cols, cols);
            for (int k = 0; k < rank; k++)
            {
                float f = scale * b[o * rank + k];
                if (f != 0) TensorPrimitives.MultiplyAdd(a.Slice(k * cols, cols), f, row, row);
            }
        }
    }
}

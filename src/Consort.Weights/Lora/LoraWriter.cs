using Consort.Formats;
using Consort.Formats.Gguf;

namespace Consort.Weights.Lora;

/// <summary>One weight's low-rank update to write: A [r, in] and B [out, r] row-major, target in GGUF naming.</summary>
/// <param name="Target">GGUF name of the adapted tensor, e.g. blk.0.attn_q.weight.</param>
/// <param name="A">A values, [r, in].</param>
/// <param name="B">B values, [out, r].</param>
/// <param name="Rank">r.</param>
/// <param name="In">Input width.</param>
/// <param name="Out">Output width.</param>
public sealed record LoraUpdate(string Target, float[] A, float[] B, int Rank, int In, int Out);

/// <summary>Writes GGUF LoRA adapters in the layout llama.cpp loads, and converts PEFT adapters to it.</summary>
public static class LoraWriter
{
    /// <summary>Writes <paramref name="updates"/> as a GGUF adapter with <paramref name="alpha"/>.</summary>
    public static void WriteGguf(string path, IEnumerable<LoraUpdate> updates, double alpha, string architecture = "llama")
    {
        using var w = new GgufWriter(path);
        w.SetMetadata("general.architecture", GgufValue.Of(architecture));
        w.SetMetadata("general.type", GgufValue.Of("adapter"));
        w.SetMetadata("adapter.type", GgufValue.Of("lora"));
        w.SetMetadata("adapter.lora.alpha", GgufValue.Of((float)alpha));
        var list = updates.ToList();
        foreach (var u in list)
        {
            if (u.A.Length != u.Rank * u.In || u.B.Length != u.Out * u.Rank) throw new ArgumentException($"LoRA update for '{u.Target}' has wrong sizes");
            w.AddTensor(u.Target + ".lora_a", [u.In, u.Rank], GgmlType.F32);
            w.AddTensor(u.Target + ".lora_b", [u.Rank, u.Out], GgmlType.F32);
        }
        foreach (var u in list)
        {
            w.WriteTensor(u.Target + ".lora_a", u.A);
            w.WriteTensor(u.Target + ".lora_b", u.B);
        }
        w.Commit();
    }

    /// <summary>
    /// Converts a PEFT adapter (HF names) to a GGUF adapter for <paramref name="baseGguf"/>: renames targets and
    /// permutes B rows of q/k like the weights. rsLoRA scaling is folded into alpha.
    /// </summary>
    public static void PeftToGguf(string peftFolder, string baseGguf, string output)
    {
        using var adapter = LoraAdapter.Open(peftFolder);
        using var g = GgufFile.Open(baseGguf);
        int heads = (int)(g.GetInt("llama.attention.head_count") ?? 0), kv = (int)(g.GetInt("llama.attention.head_count_kv") ?? heads);
        var updates = new List<LoraUpdate>();
        foreach (var p in adapter.Pairs)
        {
            var name = TensorNames.HfToGguf(p.Target) ?? throw new ModelFileException(adapter.Path, $"target '{p.Target}' has no GGUF name");
            var t = g.FindTensor(name) ?? throw new ModelFileException(adapter.Path, $"adapts '{name}', which {Path.GetFileName(baseGguf)} does not have");
            int outW = (int)p.B.Shape[0], inW = (int)p.A.Shape[1];
            var b = adapter.ReadB(p);
            if (name.EndsWith("attn_q.weight") || name.EndsWith("attn_k.weight"))
                b = TensorNames.PermuteForRope(b, outW, p.Rank, name.EndsWith("attn_q.weight") ? heads : kv);
            updates.Add(new LoraUpdate(name, adapter.ReadA(p), b, p.Rank, inW, outW));
        }
        double alpha = adapter.RsLora ? adapter.Alpha * Math.Sqrt(adapter.Rank) : adapter.Alpha;
        WriteGguf(output, updates, alpha);
    }
}

using System.Text.Json;
using Consort.Formats.Gguf;
using Consort.Formats.Llama2c;
using Consort.Formats.Safetensors;

namespace Consort.Formats.Conversion;

/// <summary>Options of <see cref="ModelConverter.Convert"/>.</summary>
public sealed record ConvertOptions
{
    /// <summary>A GGUF whose tokenizer metadata is copied (instead of building it from tokenizer.json).</summary>
    public string? TokenizerFrom { get; init; }
    /// <summary>Storage type of matrices (F32 default, F16 or BF16); 1-D tensors stay F32 in GGUF.</summary>
    public GgmlType OutType { get; init; } = GgmlType.F32;
    /// <summary>general.name of the output; defaults to the input's file name.</summary>
    public string? Name { get; init; }
}

/// <summary>Summary of a conversion.</summary>
public sealed record ConvertResult(string Output, int Tensors, long BytesWritten);

/// <summary>
/// Converts LLaMA checkpoints between Hugging Face safetensors folders, GGUF and llama2.c (read only), renaming
/// tensors with <see cref="TensorNames"/> and permuting q/k rows for the rope layout. Tensors are streamed one at a
/// time and the output appears only when complete.
/// </summary>
public static class ModelConverter
{
    /// <summary>Converts <paramref name="input"/> (HF folder, .safetensors, .gguf or llama2.c .bin) to <paramref name="output"/> (.gguf or a folder).</summary>
    public static ConvertResult Convert(string input, string output, ConvertOptions? options = null, CancellationToken ct = default)
    {
        options ??= new ConvertOptions();
        input = Path.GetFullPath(input);
        output = Path.GetFullPath(output);
        if (output == input) throw new ConsortException($"{output}: refusing to write over the input");
        bool toGguf = output.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase);
        if (input.EndsWith(".bin", StringComparison.OrdinalIgnoreCase))
        {
            using var ck = Llama2cCheckpoint.Open(input);
            var c = ck.Config;
            var hp = new LlamaHyperparameters(c.Dim, c.HiddenDim, c.Layers, c.Heads, c.KvHeads, c.VocabSize, c.SeqLen, 1e-5, 10000, c.SharedClassifier);
            hp.Check(input);
            return toGguf ? GgufLayoutToGguf(ck, hp, output, options, ct) : GgufLayoutToHf(ck, hp, output, options, ct);
        }
        using var src = TensorSources.Open(input);
        if (src is GgufTensorSource g)
        {
            if (toGguf) throw new ConsortException("GGUF to GGUF: use 'consort merge' or copy the file; convert changes format");
            return GgufLayoutToHf(g, LlamaHyperparameters.FromGguf(g.File), output, options, ct);
        }
        var st = (SafetensorsModel)src;
        if (!toGguf) throw new ConsortException($"{output}: converting safetensors to safetensors is not a conversion; give a .gguf output");
        using var cfg = st.ReadConfig() ?? throw new ModelFileException(Path.Combine(st.Folder, "config.json"), "not found (needed for the model's hyperparameters)");
        var hpHf = LlamaHyperparameters.FromConfigJson(cfg.RootElement, Path.Combine(st.Folder, "config.json"));
        return HfToGguf(st, hpHf, output, options, ct);
    }

    private static GgmlType TypeFor(TensorEntry t, ConvertOptions o, bool gguf) => gguf && t.Shape.Length < 2 ? GgmlType.F32 : o.OutType;

    private static ConvertResult HfToGguf(SafetensorsModel st, LlamaHyperparameters hp, string output, ConvertOptions o, CancellationToken ct)
    {
        using var w = new GgufWriter(output);
        hp.WriteGguf(w, o.Name ?? Path.GetFileName(st.Folder), o.OutType);
        WriteTokenizer(w, o, st.Folder, hp.VocabSize);
        var plan = new List<(TensorEntry Src, string Name, GgmlType Type)>();
        foreach (var t in st.Tensors)
        {
            var name = TensorNames.HfToGguf(t.Name);
            if (name is null)
            {
                if (t.Name.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal)) continue; // recomputed by llama.cpp
                throw new ModelFileException(st.Path, $"tensor '{t.Name}' has no GGUF name (not a LLaMA checkpoint?)");
            }
            if (name == "output.weight" && hp.TiedEmbeddings)
            {
                // Tied checkpoints may store only lm_head (safetensors drops shared storage); GGUF wants token_embd.
                if (st.Find("model.embed_tokens.weight") is not null) continue;
                name = "token_embd.weight";
            }
            var type = TypeFor(t, o, true);
            w.AddTensor(name, t.Shape.Reverse().ToArray(), type);
            plan.Add((t, name, type));
        }
        RefuseInvalid(w, st.Folder);
        long bytes = 0;
        foreach (var (t, name, _) in plan)
        {
            ct.ThrowIfCancellationRequested();
            var data = st.ReadFloat32(t);
            if (name.EndsWith("attn_q.weight") || name.EndsWith("attn_k.weight"))
            {
                int heads = name.EndsWith("attn_q.weight") ? hp.Heads : hp.KvHeads;
                data = TensorNames.PermuteForRope(data, (int)t.Shape[0], (int)t.Shape[1], heads);
            }
            w.WriteTensor(name, data);
            bytes += w.Tensors.First(x => x.Name == name).ByteSize;
        }
        w.Commit();
        return new ConvertResult(output, plan.Count, new FileInfo(output).Length);
    }

    private static ConvertResult GgufLayoutToGguf(ITensorSource src, LlamaHyperparameters hp, string output, ConvertOptions o, CancellationToken ct)
    {
        using var w = new GgufWriter(output);
        hp.WriteGguf(w, o.Name ?? Path.GetFileNameWithoutExtension(src.Path), o.OutType);
        if (o.TokenizerFrom is null) throw new ConsortException("llama2.c checkpoints carry no tokenizer: pass --tokenizer-from MODEL.gguf (a GGUF with the same vocabulary)");
        WriteTokenizer(w, o, Path.GetDirectoryName(src.Path)!, hp.VocabSize);
        foreach (var t in src.Tensors) w.AddTensor(t.Name, t.Shape.Reverse().ToArray(), TypeFor(t, o, true));
        RefuseInvalid(w, src.Path);
        foreach (var t in src.Tensors)
        {
            ct.ThrowIfCancellationRequested();
            w.WriteTensor(t.Name, src.ReadFloat32(t));
        }
        w.Commit();
        return new ConvertResult(output, src.Tensors.Count, new FileInfo(output).Length);
    }

    /// <summary>Validates the declared output before any tensor is converted: convert never writes a GGUF that llama.cpp would abort on.</summary>
    private static void RefuseInvalid(GgufWriter w, string input)
    {
        var verdict = w.Validate();
        if (!verdict.IsValid) throw new ModelFileException(input, $"refusing to convert: the GGUF would not run in llama.cpp: {verdict.Summary}");
    }

    private static ConvertResult GgufLayoutToHf(ITensorSource src, LlamaHyperparameters hp, string outFolder, ConvertOptions o, CancellationToken ct)
    {
        if (File.Exists(outFolder)) throw new ConsortException($"{outFolder}: exists and is a file; a safetensors output is a folder");
        Directory.CreateDirectory(outFolder);
        using (var w = new SafetensorsWriter(Path.Combine(outFolder, "model.safetensors")))
        {
            w.SetMetadata("format", "pt");
            var plan = new List<(TensorEntry, string)>();
            foreach (var t in src.Tensors)
            {
                var name = TensorNames.GgufToHf(t.Name) ?? throw new ModelFileException(src.Path, $"tensor '{t.Name}' has no Hugging Face name");
                w.AddTensor(name, t.Shape, TypeFor(t, o, false));
                plan.Add((t, name));
            }
            foreach (var (t, name) in plan)
            {
                ct.ThrowIfCancellationRequested();
                var data = src.ReadFloat32(t);
                if (t.Name.EndsWith("attn_q.weight") || t.Name.EndsWith("attn_k.weight"))
                    data = TensorNames.PermuteForRope(data, (int)t.Shape[0], (int)t.Shape[1], t.Name.EndsWith("attn_q.weight") ? hp.Heads : hp.KvHeads, inverse: true);
                w.WriteTensor(name, data);
            }
            w.Commit();
        }
        var dtype = o.OutType switch { GgmlType.F16 => "float16", GgmlType.BF16 => "bfloat16", _ => "float32" };
        var hpOut = hp with { TiedEmbeddings = src.Find("output.weight") is null };
        File.WriteAllText(Path.Combine(outFolder, "config.json"), hpOut.ToConfigJson(dtype).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return new ConvertResult(outFolder, src.Tensors.Count, new FileInfo(Path.Combine(outFolder, "model.safetensors")).Length);
    }

    private static void WriteTokenizer(GgufWriter w, ConvertOptions o, string folder, int vocab)
    {
        if (o.TokenizerFrom is not null)
        {
            using var reference = GgufFile.Open(o.TokenizerFrom);
            if (reference.Tokens!?.Length is int n && n != vocab)
                throw new ModelFileException(reference.Path, $"its tokenizer has {n} tokens but the model's vocabulary is {vocab}");
            TokenizerJsonImporter.CopyFrom(w, reference);
        }
        else TokenizerJsonImporter.Apply(w, folder, vocab);
    }

    /// <summary>Files of a Hugging Face folder worth carrying beside converted or merged weights.</summary>
    public static readonly string[] SideFiles =
        ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "vocab.json", "merges.txt"];
}

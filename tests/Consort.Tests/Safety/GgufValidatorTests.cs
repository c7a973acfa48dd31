using Consort.Formats.Gguf;
using Consort.Testing;

namespace Consort.Tests.Safety;

/// <summary>
/// The semantic checks on real files and on in-memory mutations of them (metadata and tensor infos edited, then
/// validated without writing): each mutation is one that llama.cpp answers with an abort or a segfault.
/// </summary>
public sealed class GgufValidatorTests
{
    public static TheoryData<string> SharedModels => new()
    {
        TestPaths.Stories260K, TestPaths.Llama2Xs, TestPaths.TinyStories656K,
        Path.Combine(TestPaths.RepoRoot, "zoo", "base.gguf"), Path.Combine(TestPaths.RepoRoot, "zoo", "arith.gguf"),
    };

    [Theory]
    [MemberData(nameof(SharedModels))]
    public void RealModelsPass(string path)
    {
        using var f = GgufFile.Open(path);
        var v = GgufValidator.Validate(f);
        Assert.True(v.IsValid, v.Summary);
        Assert.True(v.TensorsChecked);
        Assert.Equal("valid", v.Summary);
    }

    /// <summary>stories260K's metadata and tensor infos, edited, then validated.</summary>
    private static GgufVerdict Mutated(Action<Dictionary<string, GgufValue>, List<GgufTensorInfo>> edit, string model = "")
    {
        using var f = GgufFile.Open(model.Length > 0 ? model : TestPaths.Stories260K);
        var md = new Dictionary<string, GgufValue>(f.Metadata);
        var tensors = f.Tensors.ToList();
        edit(md, tensors);
        return GgufValidator.Validate(f.Path, md, tensors);
    }

    private static void Retype(List<GgufTensorInfo> tensors, string name, GgmlType type)
    {
        int i = tensors.FindIndex(t => t.Name == name);
        tensors[i] = tensors[i] with { Type = type };
    }

    private static void AssertProblem(GgufVerdict v, params string[] fragments)
    {
        Assert.False(v.IsValid, "expected a problem");
        foreach (var f in fragments) Assert.Contains(f, v.Summary);
        Assert.Throws<ModelFileException>(v.ThrowIfInvalid);
    }

    [Theory]
    [InlineData("blk.0.attn_norm.weight", GgmlType.I32, "needs F32 for 1-D weights")]
    [InlineData("output_norm.weight", GgmlType.F16, "needs F32 for 1-D weights")]
    [InlineData("blk.2.attn_q.weight", GgmlType.I32, "cannot use as a weight matrix")]
    [InlineData("token_embd.weight", GgmlType.Q8_1, "cannot use as a weight matrix")]
    [InlineData("blk.1.ffn_down.weight", GgmlType.F64, "cannot use as a weight matrix")]
    public void TensorTypesLlamaCppCannotUseAreRefused(string tensor, GgmlType type, string message) =>
        AssertProblem(Mutated((_, t) => Retype(t, tensor, type)), tensor, type.ToString(), message);

    [Fact]
    public void ShapesMustMatchTheHyperparameters()
    {
        AssertProblem(Mutated((_, t) =>
        {
            int i = t.FindIndex(x => x.Name == "blk.0.attn_k.weight");
            t[i] = t[i] with { Dimensions = [64, 64] }; // 4 kv heads of 8 = 32 rows
        }), "'blk.0.attn_k.weight' has shape [64, 64]", "[64, 32]");
        AssertProblem(Mutated((_, t) =>
        {
            int i = t.FindIndex(x => x.Name == "blk.0.ffn_up.weight");
            t[i] = t[i] with { Dimensions = [64 * 172] }; // 1-D where a matrix belongs
        }), "'blk.0.ffn_up.weight' has shape");
    }

    [Fact]
    public void TheTensorSetMustBeALlamaModel()
    {
        AssertProblem(Mutated((_, t) => t.RemoveAll(x => x.Name == "blk.3.attn_v.weight")), "missing", "'blk.3.attn_v.weight'");
        AssertProblem(Mutated((_, t) => t.Add(t[0] with { Name = "blk.9.attn_q.weight" })), "not part of a 5-layer llama model", "blk.9.attn_q.weight");
        AssertProblem(Mutated((m, _) => m["llama.block_count"] = GgufValue.Of(4u)), "not part of a 4-layer llama model", "blk.4.");
    }

    [Theory]
    [InlineData("llama.block_count", 0u, "'llama.block_count' is 0; it must be 1..512")]
    [InlineData("llama.block_count", 100000u, "it must be 1..512")]
    [InlineData("llama.attention.head_count", 0u, "'llama.attention.head_count' is 0")]
    [InlineData("llama.attention.head_count", 12u, "the embedding length 64 is not a multiple of the head count 12")]
    [InlineData("llama.attention.head_count_kv", 3u, "not a multiple of the key/value head count 3")]
    [InlineData("llama.attention.head_count_kv", 16u, "must be 1..8")]
    [InlineData("llama.context_length", 0u, "'llama.context_length' is 0")]
    [InlineData("llama.rope.dimension_count", 4u, "needs it equal to the head size 8")]
    [InlineData("llama.feed_forward_length", 0u, "'llama.feed_forward_length' is 0")]
    public void HyperparameterRangesAndDivisibility(string key, uint value, string message) =>
        AssertProblem(Mutated((m, _) => m[key] = GgufValue.Of(value)), message);

    [Theory]
    [InlineData(-1f, "must be in (0, 1)")]
    [InlineData(0f, "must be in (0, 1)")]
    [InlineData(float.NaN, "must be in (0, 1)")]
    public void EpsilonMustBePositive(float eps, string message) =>
        AssertProblem(Mutated((m, _) => m["llama.attention.layer_norm_rms_epsilon"] = GgufValue.Of(eps)), "layer_norm_rms_epsilon", message);

    [Fact]
    public void ExpertCountsOnlyWithExpertTensors()
    {
        var v = Mutated((m, _) => m["llama.expert_count"] = GgufValue.Of(2u));
        AssertProblem(v, "'llama.expert_count' is 2 but the file has no expert tensors");
        Assert.DoesNotContain("missing", v.Summary); // the dense tensors are checked as dense
        AssertProblem(Mutated((m, _) => m["llama.expert_used_count"] = GgufValue.Of(1u)), "the model has no experts");
    }

    [Fact]
    public void MetadataTypesAreTheOnesLlamaCppReads()
    {
        AssertProblem(Mutated((m, _) => m["general.alignment"] = GgufValue.Of(64)), "'general.alignment' is i32 but llama.cpp reads it as u32");
        AssertProblem(Mutated((m, _) => m["llama.block_count"] = GgufValue.Of(5)), "'llama.block_count' is i32 but llama.cpp reads it as u32");
        AssertProblem(Mutated((m, _) => m["llama.rope.freq_base"] = GgufValue.Of(10000u)), "'llama.rope.freq_base' is u32 but llama.cpp reads it as f32");
        AssertProblem(Mutated((m, _) => m["tokenizer.ggml.scores"] = GgufValue.Of(new int[512])), "'tokenizer.ggml.scores' is an array of i32");
        AssertProblem(Mutated((m, _) => m["tokenizer.ggml.token_type"] = GgufValue.Of(new float[512])), "array of i32");
        AssertProblem(Mutated((m, _) => m["tokenizer.ggml.bos_token_id"] = GgufValue.Of("1")), "'tokenizer.ggml.bos_token_id' is str");
        AssertProblem(Mutated((m, _) => m["llama.feed_forward_length"] = GgufValue.Of(new float[5])), "(or an array of u32)");
        // A per-layer array of the right type and length is what llama.cpp accepts.
        Assert.True(Mutated((m, _) => m["llama.feed_forward_length"] = GgufValue.Of(Enumerable.Repeat(172, 5).ToArray())).IsValid);
        AssertProblem(Mutated((m, _) => m["llama.feed_forward_length"] = GgufValue.Of(Enumerable.Repeat(172, 4).ToArray())), "4 per-layer values but the model has 5 layers");
    }

    [Fact]
    public void VocabularyMustBeUsable()
    {
        string[] Tokens(Dictionary<string, GgufValue> m) => (string[])((string[])m["tokenizer.ggml.tokens"].Value).Clone();
        AssertProblem(Mutated((m, _) => m["tokenizer.ggml.tokens"] = GgufValue.Of(Array.Empty<string>())), "the vocabulary is empty");
        AssertProblem(Mutated((m, _) => { var t = Tokens(m); t[7] = t[9]; m["tokenizer.ggml.tokens"] = GgufValue.Of(t); }), "tokens 7 and 9 are both", "unique");
        AssertProblem(Mutated((m, _) => { var t = Tokens(m); t[300] = ""; m["tokenizer.ggml.tokens"] = GgufValue.Of(t); }), "token 300 is an empty string");
        AssertProblem(Mutated((m, _) => m["tokenizer.ggml.model"] = GgufValue.Of("sentencepiece")), "'sentencepiece', not a tokenizer llama.cpp knows");
        AssertProblem(Mutated((m, _) => m.Remove("tokenizer.ggml.model")), "tokenizer.ggml.model is missing");
        AssertProblem(Mutated((m, _) => m["tokenizer.ggml.eos_token_id"] = GgufValue.Of(512u)), "'tokenizer.ggml.eos_token_id' is 512, outside the vocabulary of 512 tokens");
        AssertProblem(Mutated((m, _) => m["tokenizer.ggml.scores"] = GgufValue.Of(new float[100])), "100 entries for 512 tokens");
        AssertProblem(Mutated((m, t) => m["tokenizer.ggml.model"] = GgufValue.Of("gpt2")), "needs tokenizer.ggml.merges");
        // 0xFFFFFFFF (-1) means "no such token", as stories260K stores it for its separator and padding ids.
        Assert.True(Mutated((m, _) => m["tokenizer.ggml.unknown_token_id"] = GgufValue.Of(uint.MaxValue)).IsValid);
        AssertProblem(Mutated((m, t) =>
        {
            m["tokenizer.ggml.tokens"] = GgufValue.Of(Tokens(m).Take(500).ToArray());
            m["tokenizer.ggml.scores"] = GgufValue.Of(new float[500]);
            m["tokenizer.ggml.token_type"] = GgufValue.Of(new int[500]);
        }), "'token_embd.weight' has shape [64, 512] but the hyperparameters give [64, 500]");
    }

    [Fact]
    public void TheMostProblemsAreListedButCapped()
    {
        var v = Mutated((_, t) => { for (int i = 0; i < t.Count; i++) t[i] = t[i] with { Type = GgmlType.I32 }; });
        Assert.Equal(GgufValidator.MaxProblems, v.Problems.Count);
        Assert.StartsWith($"{GgufValidator.MaxProblems}+ problems: ", v.Summary);
        Assert.Contains("and 15 more", v.Summary);
    }

    [Fact]
    public void NamesFromTheFileAreEscapedAndCut()
    {
        var v = Mutated((_, t) => t.Add(t[0] with { Name = "evil\n\0name" + new string('x', 5000) }));
        AssertProblem(v, "evil\\n\\0name", "more characters");
        Assert.True(v.Summary.Length < 600, v.Summary);
    }

    [Fact]
    public void OtherArchitecturesGetTheGenericChecks()
    {
        var v = Mutated((m, _) =>
        {
            m["general.architecture"] = GgufValue.Of("qwen2");
            m["qwen2.block_count"] = GgufValue.Of(5);
        });
        Assert.False(v.TensorsChecked);
        AssertProblem(v, "'qwen2.block_count' is i32 but llama.cpp reads it as u32");
    }

    [Fact]
    public void AdaptersAreCheckedAsLoraPairs()
    {
        var md = new Dictionary<string, GgufValue>
        {
            ["general.architecture"] = GgufValue.Of("llama"), ["general.type"] = GgufValue.Of("adapter"),
            ["adapter.type"] = GgufValue.Of("lora"), ["adapter.lora.alpha"] = GgufValue.Of(16f),
        };
        GgufTensorInfo T(string n, long[] d) => new(n, d, GgmlType.F32, 0, d.Aggregate(4L, (a, b) => a * b));
        var good = new List<GgufTensorInfo> { T("blk.0.attn_q.weight.lora_a", [64, 8]), T("blk.0.attn_q.weight.lora_b", [8, 64]) };
        Assert.True(GgufValidator.Validate("a.gguf", md, good).IsValid);
        AssertProblem(GgufValidator.Validate("a.gguf", md, [good[0]]), "has no matching 'blk.0.attn_q.weight.lora_b'");
        AssertProblem(GgufValidator.Validate("a.gguf", md, [good[0], T("blk.0.attn_q.weight.lora_b", [4, 64])]), "expected [n_in, r] and [r, n_out]");
        AssertProblem(GgufValidator.Validate("a.gguf", md, [.. good, T("blk.0.attn_q.weight", [64, 64])]), "is not a LoRA tensor");
        AssertProblem(GgufValidator.Validate("a.gguf", new Dictionary<string, GgufValue>(md) { ["adapter.type"] = GgufValue.Of("ia3") }, good), "llama.cpp loads only \"lora\" adapters");
    }

    [Fact]
    public void TheCorpusOfCrashingFilesIsRefused()
    {
        foreach (var path in Directory.GetFiles(Path.Combine(TestPaths.Shared, "fuzz-crashes", "gguf"), "*.gguf"))
        {
            try
            {
                using var f = GgufFile.Open(path);
                Assert.False(GgufValidator.Validate(f).IsValid, Path.GetFileName(path));
            }
            catch (ModelFileException) { } // unreadable already
        }
    }
}

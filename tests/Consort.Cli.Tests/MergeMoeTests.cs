using System.Text.Json.Nodes;
using Consort.Cli.Commands;
using Consort.Formats.Gguf;
using Consort.Testing;
using Consort.Weights.Moe;

namespace Consort.Cli.Tests;

/// <summary><c>consort merge-moe</c>: a mixture of the zoo's experts that llama.cpp runs and whose routers send arithmetic to the arithmetic expert.</summary>
public class MergeMoeTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static List<string> Inputs(string dataset, string split, int take) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "zoo", "datasets", dataset + ".json")))![split]!.AsArray()
            .Take(take).Select(x => x!["input"]!.GetValue<string>()).ToList();

    [Fact]
    public async Task ZooMixtureRunsInLlamaCppAndRoutesArithmeticToTheArithmeticExpert()
    {
        var zoo = Path.Combine(TestPaths.RepoRoot, "zoo");
        string Prompts(IEnumerable<string> p) => string.Join("", p.Select(x => $"\n      - \"{x}\""));
        List<string> arith = Inputs("arith", "dev", 8), factsA = Inputs("facts_a", "dev", 4), factsB = Inputs("facts_b", "dev", 4);
        var yml = _dir.File("moe.yml");
        File.WriteAllText(yml, $"""
            base_model: {zoo}/base.gguf
            gate_mode: hidden_avg
            dtype: float16
            experts_per_token: 1
            experts:
              - source_model: {zoo}/arith.gguf
                positive_prompts:{Prompts(arith)}
                negative_prompts:{Prompts(factsA.Concat(factsB))}
              - source_model: {zoo}/facts_a.gguf
                positive_prompts:{Prompts(factsA)}
                negative_prompts:{Prompts(arith)}
              - source_model: {zoo}/facts_b.gguf
                positive_prompts:{Prompts(factsB)}
                negative_prompts:{Prompts(arith)}
            """);
        var output = _dir.File("moe.gguf");
        var (code, stdout, stderr) = await CliHarness.RunAsync("merge-moe", yml, "--out", output);
        Assert.True(code == 0, stdout + stderr);
        Assert.Contains("3 per layer, 1 per token, 4 layers", stdout);

        using var states = new LlamaHiddenStates();
        float[][] gates, norms;
        using (var g = GgufFile.Open(output))
        {
            Assert.Equal(3, g.GetInt("llama.expert_count"));
            gates = Enumerable.Range(0, 4).Select(l => g.ReadFloat32(g.FindTensor($"blk.{l}.ffn_gate_inp.weight")!)).ToArray();
            norms = Enumerable.Range(0, 4).Select(l => g.ReadFloat32(g.FindTensor($"blk.{l}.ffn_norm.weight")!)).ToArray();
        }
        // llama.cpp loads and runs the mixture: every prompt's embedding at the last layer comes out finite.
        var last = states.EmbedEach(states.Probe(output, 3, ProbePoint.AfterAttention), ["Q: 8+41= A:"], false)[0];
        Assert.All(last, x => Assert.True(float.IsFinite(x)));

        // What each layer's router sees at every token of held-out prompts (ffn_norm of the residual after attention,
        // computed by llama.cpp on the mixture itself), and where it sends it.
        int Route(int layer, float[] h)
        {
            var x = h.Zip(norms[layer], (a, b) => a * b).ToArray();
            return Enumerable.Range(0, 3).MaxBy(e => x.Select((v, j) => v * gates[layer][e * x.Length + j]).Sum());
        }
        double Share(List<string> prompts, int expert)
        {
            int hits = 0, total = 0;
            for (int l = 0; l < 4; l++)
                foreach (var p in prompts)
                    foreach (var h in states.EmbedTokens(states.Probe(output, l, ProbePoint.AfterAttention), p).Skip(1)) // not BOS
                    {
                        total++;
                        if (Route(l, h) == expert) hits++;
                    }
            return hits / (double)total;
        }
        double arithShare = Share(Inputs("arith", "test", 12), 0);
        double factsShare = Share(Inputs("facts_a", "test", 6).Concat(Inputs("facts_b", "test", 6)).ToList(), 0);
        Assert.True(arithShare > 0.5, $"tokens of arithmetic prompts routed to the arithmetic expert: {arithShare:P0} (facts: {factsShare:P0}) of (token, layer) pairs");
        // The router tells them apart: fact questions go to the arithmetic expert clearly less often (later layers
        // drift toward it, since the mixture's earlier layers already ran it on many tokens).
        Assert.True(arithShare - factsShare > 0.2, $"arithmetic {arithShare:P0} vs fact questions {factsShare:P0} routed to the arithmetic expert");
    }

    [Fact]
    public async Task BadMoeConfigsAreOneLineErrors()
    {
        var zoo = Path.Combine(TestPaths.RepoRoot, "zoo");
        var yml = _dir.File("bad.yml");
        File.WriteAllText(yml, $"base_model: {zoo}/base.gguf\nexperts:\n  - source_model: {zoo}/arith.gguf\n  - source_model: {zoo}/facts_a.gguf\n");
        var (code, _, err) = await CliHarness.RunAsync("merge-moe", yml, "--out", _dir.File("x.gguf"));
        Assert.Equal(1, code);
        Assert.Contains("error: experts[0] (arith.gguf) has no positive_prompts", err);
        File.WriteAllText(yml, $"base_model: {zoo}/base.gguf\ngate_mode: random\nexperts_per_token: 3\nexperts:\n  - source_model: {zoo}/arith.gguf\n  - source_model: {zoo}/facts_a.gguf\n");
        (code, _, err) = await CliHarness.RunAsync("merge-moe", yml, "--out", _dir.File("x.gguf"));
        Assert.Contains("experts_per_token is 3 but there are 2 experts", err);
        File.WriteAllText(yml, $"base_model: {TestPaths.Stories260K}\ngate_mode: uniform\nexperts:\n  - source_model: {TestPaths.Llama2Xs}\n  - source_model: {TestPaths.Stories260K}\n");
        (code, _, err) = await CliHarness.RunAsync("merge-moe", yml, "--out", _dir.File("x.gguf"));
        Assert.Contains("cannot build the mixture", err);
        Assert.Contains("blk.0.ffn_down.weight", err);
        Assert.False(File.Exists(_dir.File("x.gguf")));
    }
}

using System.Text.Json.Nodes;
using Consort.Evaluation;
using Consort.LlamaCpp;
using Consort.Methods;
using Consort.Testing;

namespace Consort.Tests.Methods.Weight;

/// <summary>What the weight-search tests on the zoo share: its datasets as dev data, its models, scoring, and a search's evaluation log.</summary>
internal static class ZooSearchTesting
{
    /// <summary>A zoo dataset's split with the zoo's prompt (greedy, 8 tokens, one line).</summary>
    public static IFitData Data(string dataset, string split) => EvalTask.Create(new JsonObject
    {
        ["dataset"] = Path.Combine(TestPaths.RepoRoot, "zoo", "datasets", dataset + ".json"), ["prompt"] = "{input}", ["max_tokens"] = 8,
        ["stop"] = new JsonArray("\n"), ["temperature"] = 0,
    }, EvalDataset.DefaultSearchFolders(TestPaths.RepoRoot)).BuildFitData(split);

    /// <summary>A zoo model loaded through llama.cpp.</summary>
    public static ConsortModel Zoo(string name) => LlamaModelFactory.Load(new LlamaModelOptions { Path = Consort.Training.Zoo.ResolveModel("zoo:" + name), Name = name });

    /// <summary>Mean score of <paramref name="m"/> on <paramref name="items"/>.</summary>
    public static async Task<double> Score(ConsortModel m, IReadOnlyList<FitExample> items)
    {
        double sum = 0;
        foreach (var ex in items) sum += ex.Score((await m.Chat.GetResponseAsync(ex.Messages, ex.Options)).Text);
        return sum / items.Count;
    }

    /// <summary>A search's evaluations in order: (key, point, score).</summary>
    public static List<(string Key, double[] Point, double Score)> Log(string dir) =>
        File.ReadAllLines(Path.Combine(dir, "evaluations.jsonl")).Skip(1).Where(l => l.Length > 0).Select(l => JsonNode.Parse(l)!.AsObject())
            .Select(o => ((string)o["key"]!, o["point"]!.AsArray().Select(v => (double)v!).ToArray(), (double)o["score"]!)).ToList();
}

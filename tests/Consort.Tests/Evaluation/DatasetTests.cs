using System.Text.Json.Nodes;
using Consort.Evaluation;
using Consort.Testing;
using Xunit;

namespace Consort.Tests.Evaluation;

public sealed class DatasetTests
{
    private static string[] Folders => [Path.Combine(TestPaths.Shared, "datasets")];

    [Fact]
    public void LoadsSharedDatasetsByNameAndPath()
    {
        var gsm = EvalDataset.Load("gsm8k", Folders);
        Assert.Equal("gsm8k", gsm.Name);
        Assert.Equal("exact_match", gsm.TaskType);
        Assert.Equal(200, gsm.GetSplit("dev").Count);
        Assert.Equal(1000, gsm.GetSplit("test").Count);
        var first = gsm.GetSplit("test", 5);
        Assert.Equal(5, first.Count);
        Assert.Equal(gsm.GetSplit("test")[4].Key, first[4].Key); // limit = the first N, in file order
        Assert.NotNull(first[0].Input);

        var byPath = EvalDataset.Load(TestPaths.Dataset("mmlu_redux"), []);
        Assert.Equal("mmlu_redux", byPath.Name); // this file says "name", not "dataset"
        var mc = byPath.GetSplit("test", 3)[0];
        Assert.True(mc.Choices.Count >= 2);
        Assert.Contains(mc.Choices, c => c.Key == mc.Answer);

        var popqa = EvalDataset.Load("popqa.json", Folders);
        Assert.Equal("f1_match", popqa.TaskType);
        Assert.True(popqa.GetSplit("test", 1)[0].GoldList.Count >= 2); // a JSON list stored in a string
    }

    [Fact]
    public void RepeatedIdsGetDistinctKeys()
    {
        var math = EvalDataset.Load("math", Folders).GetSplit("test");
        Assert.Equal(math.Count, math.Select(i => i.Key).Distinct().Count());
        Assert.Contains(math, i => i.Key.Contains('#'));
    }

    [Fact]
    public void ItemsWithNullGoldAreSkippedAndCounted()
    {
        var math = EvalTask.Create(JsonValue.Create("math"), Folders);
        var items = math.GetItems("test", 400, out var skipped);
        Assert.Equal(400, items.Count);      // the limit counts scorable items
        Assert.Equal(5, skipped.Count);      // five test items have "output": null; no sample can hold them
        Assert.All(items, i => Assert.NotNull(i.Output));
        Assert.Contains(EvalDataset.DefaultSearchFolders(TestPaths.RepoRoot), f => Directory.Exists(f) && File.Exists(Path.Combine(f, "math.json")));
    }

    [Fact]
    public void MissingDatasetListsFoldersAndNames()
    {
        var e = Assert.Throws<ConsortException>(() => EvalDataset.Load("gsm9k", [.. Folders, "/nonexistent/folder"]));
        Assert.Contains("gsm9k", e.Message);
        Assert.Contains("gsm8k", e.Message);
        Assert.Contains("popqa", e.Message);
        Assert.Contains("/nonexistent/folder (missing)", e.Message);
        Assert.Contains("not found", Assert.Throws<ConsortException>(() => EvalDataset.Load("/no/such/file.json", Folders)).Message);
    }

    [Fact]
    public void BadFilesGiveClearErrors()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp.File("broken.json"), "{\"dataset\": \"x\",\n \"test\": [ {\"id\": 1, } oops ]}");
        var e = Assert.Throws<ConsortException>(() => EvalDataset.Load("broken", [tmp.Path]));
        Assert.Contains("broken.json", e.Message);
        Assert.Contains("line 2", e.Message);

        File.WriteAllText(tmp.File("nosplit.json"), """{"dataset": "n", "task_type": "exact_match", "dev": [{"id": 1, "input": "a", "output": "b"}]}""");
        var ds = EvalDataset.Load("nosplit", [tmp.Path]);
        var se = Assert.Throws<ConsortException>(() => ds.GetSplit("test"));
        Assert.Contains("no split 'test'", se.Message);
        Assert.Contains("dev", se.Message);

        File.WriteAllText(tmp.File("nogold.json"), """{"dataset": "g", "task_type": "exact_match", "test": [{"id": 1, "input": "a", "output": "b"}, {"id": "q7", "input": "c"}]}""");
        var task = EvalTask.Create(JsonValue.Create("nogold"), [tmp.Path]);
        var fe = Assert.Throws<ConsortException>(() => task.GetItems("test"));
        Assert.Contains("nogold.json", fe.Message);
        Assert.Contains("q7", fe.Message);
        Assert.Contains("'output'", fe.Message);
        Assert.Single(task.GetItems("test", 1)); // the first item alone is fine

        File.WriteAllText(tmp.File("mcbad.json"), """{"name": "m", "task_type": "multiple_choice", "test": [{"id": 3, "question": "q", "choices": {"A": "x", "B": "y"}, "answer": "E"}]}""");
        var me = Assert.Throws<ConsortException>(() => EvalTask.Create(JsonValue.Create("mcbad"), [tmp.Path]).GetItems());
        Assert.Contains("item 3", me.Message);
        Assert.Contains("'answer'", me.Message);
    }

    [Fact]
    public void TaskOptionsPromptsAndFitData()
    {
        var config = JsonNode.Parse("""{"dataset": "gsm8k", "prompt": "Q: {input} A:", "system": "Be brief.", "max_tokens": 16, "stop": "\n"}""");
        var task = EvalTask.Create(config, Folders);
        var item = task.GetItems("test", 1)[0];
        var messages = task.BuildMessages(item);
        Assert.Equal(2, messages.Count);
        Assert.Equal("Be brief.", messages[0].Text);
        Assert.Equal($"Q: {item.Input} A:", messages[1].Text);
        var chat = task.BuildChatOptions();
        Assert.Equal(16, chat.MaxOutputTokens);
        Assert.Equal(["\n"], chat.StopSequences!);
        Assert.Equal(0f, chat.Temperature);

        var fit = task.BuildFitData("dev", 10);
        Assert.Equal(10, fit.Examples.Count);
        var ex = fit.Examples[0];
        Assert.Equal(1.0, ex.Score($"so... #### {ex.Gold}"));
        Assert.Equal(0.0, ex.Score("#### -12345"));
        Assert.Equal(ex.NormalizeAnswer($"Answer: {ex.Gold}."), ex.NormalizeAnswer($"\\boxed{{{ex.Gold}}}"));

        var mmlu = EvalTask.Create(JsonValue.Create("mmlu_redux"), Folders);
        var q = mmlu.GetItems("test", 1)[0];
        var prompt = mmlu.PromptText(q);
        Assert.Contains(q.Question!, prompt);
        Assert.Contains($"A. {q.Choices[0].Value}", prompt);

        // blend embeds the choices in the question: they are not listed twice.
        var blend = EvalTask.Create(JsonValue.Create("blend"), Folders);
        var b = blend.GetItems("test", 1)[0];
        var bp = blend.PromptText(b);
        Assert.Equal(1, CountOf(bp, $"A. {b.Choices[0].Value}"));

        var bbh = EvalTask.Create(JsonValue.Create("bbh"), Folders);
        Assert.True(bbh.GetItems("test", 200).Select(bbh.GroupOf).Distinct().Count() > 3); // per-domain groups
        var cb = EvalTask.Create(JsonNode.Parse("""{"dataset": "culturalbench_hard", "group_by": "country"}"""), Folders);
        Assert.Equal(cb.GetItems("test", 1)[0].GetString("country"), cb.GroupOf(cb.GetItems("test", 1)[0]));

        Assert.Contains("unknown key 'promt'", Assert.Throws<ConfigException>(() => EvalTaskOptions.Parse(JsonNode.Parse("""{"dataset": "x", "promt": "y"}"""))).Message);
        Assert.Contains("not supported offline", Assert.Throws<ConfigException>(() => EvalTask.Create(JsonValue.Create("humaneval"), Folders)).Message);
        Assert.Contains("only for multiple_choice", Assert.Throws<ConfigException>(() => EvalTask.Create(JsonNode.Parse("""{"dataset": "gsm8k", "scoring": "likelihood"}"""), Folders)).Message);
    }

    private static int CountOf(string s, string part)
    {
        int n = 0;
        for (int i = s.IndexOf(part, StringComparison.Ordinal); i >= 0; i = s.IndexOf(part, i + 1, StringComparison.Ordinal)) n++;
        return n;
    }
}

using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Consort.Cli.Commands;
using Consort.Config;
using Consort.Evaluation;
using Consort.Formats;
using Consort.Formats.Conversion;
using Consort.Formats.Gguf;
using Consort.Testing;
using Consort.Weights.Config;
using Consort.Weights.Engine;
using Xunit.Abstractions;

namespace Consort.Cli.Tests.Safety;

/// <summary>
/// A seeded mutation fuzzer over every input Consort reads: GGUF files, safetensors folders, run configs, datasets and
/// merge YAML. Each mutant goes through Consort's real entry points; a GGUF the validator accepts (directly, converted
/// or merged) is then loaded and run by llama.cpp in a child process. Zero internal errors, hangs and native crashes
/// are allowed, and error messages must stay short and free of control characters.
/// The default run (test.sh) makes a few hundred mutants; for thousands, set CONSORT_FUZZ_MUTANTS (and CONSORT_FUZZ_SEED):
/// <c>CONSORT_FUZZ_MUTANTS=5000 dotnet test tests/Consort.Cli.Tests -c Release --filter Category=Fuzz</c>.
/// Counts go to the test output and to artifacts/fuzz/KIND.json.
/// </summary>
[Trait("Category", "Fuzz")]
public sealed class MutationFuzzTests(ITestOutputHelper output)
{
    private static int Share(double fraction) => Math.Max(5, (int)(FuzzHarness.TotalMutants * fraction));
    private static string Examples => Path.Combine(TestPaths.RepoRoot, "examples");

    private void Finish(FuzzHarness h, System.Diagnostics.Stopwatch sw)
    {
        h.Report.Elapsed = sw.Elapsed;
        h.Save();
        output.WriteLine(h.Report.ToString());
        foreach (var (shape, n) in h.Report.ErrorShapes.OrderByDescending(kv => kv.Value).Take(8)) output.WriteLine($"  {n,4} x {shape}");
        foreach (var f in h.Report.Failures) output.WriteLine("FAIL " + f);
        Assert.True(h.Report.Failures.Count == 0, $"{h.Report}\n{string.Join("\n", h.Report.Failures.Take(10))}");
        Assert.Equal(0, h.Report.Internal + h.Report.Hangs + h.Report.NativeCrashes);
    }

    [Fact]
    public async Task GgufFiles()
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var h = new FuzzHarness(new FuzzReport("gguf"));
        var r = new Random(FuzzHarness.Seed);
        var m = new Mutators(r);
        using var tmp = new TempDir();
        string[] seeds = [TestPaths.Stories260K, TestPaths.TinyStories656K, Path.Combine(TestPaths.RepoRoot, "zoo", "base.gguf")];
        var bytes = seeds.ToDictionary(s => s, File.ReadAllBytes);
        var dataOffset = seeds.ToDictionary(s => s, s => { using var f = GgufFile.Open(s); return f.DataOffset; });
        int n = Share(0.4);
        for (int i = 0; i < n; i++)
        {
            string seed = seeds[r.Next(seeds.Length)], path = tmp.File($"m{i}.gguf");
            string what;
            if (r.Next(2) == 0)
            {
                File.WriteAllBytes(path, m.GgufBytes(bytes[seed], dataOffset[seed]));
                what = $"bytes of {Path.GetFileName(seed)} #{i}";
            }
            else
            {
                try { what = $"{Path.GetFileName(seed)} #{i}: " + m.GgufStructured(seed, path); }
                catch (MutationNotApplicable) { i--; continue; }
            }
            h.CheckGguf(path, what);
        }
        await h.ProbeBatchAsync();
        Finish(h, sw);
    }

    [Fact]
    public async Task SafetensorsFolders()
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var h = new FuzzHarness(new FuzzReport("safetensors"));
        var r = new Random(FuzzHarness.Seed + 1);
        var m = new Mutators(r);
        using var tmp = new TempDir();
        string seed = TestPaths.Model("tinystories-656k-hf");
        int n = Share(0.15);
        for (int i = 0; i < n; i++)
        {
            string dir = tmp.File($"s{i}");
            Directory.CreateDirectory(dir);
            string target = r.Next(20) switch { < 8 => "config.json", < 13 => "tokenizer.json", < 15 => "tokenizer_config.json", _ => "model.safetensors" };
            foreach (var f in Directory.GetFiles(seed))
                if (Path.GetFileName(f) != target) File.CreateSymbolicLink(Path.Combine(dir, Path.GetFileName(f)), f);
            string src = Path.Combine(seed, target), dst = Path.Combine(dir, target);
            if (target == "model.safetensors") MutateSafetensorsHeader(m, src, dst);
            else File.WriteAllText(dst, m.Json(File.ReadAllText(src)));
            string output = tmp.File($"s{i}.gguf"), what = $"safetensors #{i}: {target}";
            if (h.Check(what, ct => Task.FromResult(ModelConverter.Convert(dir, output, null, ct)), input: dir))
                h.CheckGguf(output, what + " (converted)", newMutant: false);
        }
        await h.ProbeBatchAsync();
        Finish(h, sw);
    }

    private static void MutateSafetensorsHeader(Mutators m, string src, string dst)
    {
        var all = File.ReadAllBytes(src);
        long len = BitConverter.ToInt64(all, 0);
        string header = System.Text.Encoding.UTF8.GetString(all, 8, (int)len);
        var mutated = System.Text.Encoding.UTF8.GetBytes(m.Json(header));
        using var fs = File.Create(dst);
        fs.Write(BitConverter.GetBytes((long)mutated.Length));
        fs.Write(mutated);
        fs.Write(all.AsSpan(8 + (int)len));
    }

    [Fact]
    public void RunConfigs()
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var h = new FuzzHarness(new FuzzReport("run_configs"));
        var r = new Random(FuzzHarness.Seed + 2);
        var m = new Mutators(r);
        using var tmp = new TempDir();
        // Configs whose methods build new model files (weight_merge, the quickstart) would probe each of them: the long run's job.
        var seeds = Directory.GetFiles(Examples, "*.json").Where(f => Path.GetFileName(f) is not ("serve.json" or "quickstart.json" or "weight_merge.json"))
            .Concat(Directory.GetFiles(Path.Combine(TestPaths.Shared, "fuzz-crashes", "config"), "*.json")).Order(StringComparer.Ordinal).ToArray();
        int n = Share(0.15);
        for (int i = 0; i < n; i++)
        {
            string seed = seeds[r.Next(seeds.Length)];
            string text = m.Json(File.ReadAllText(seed));
            string outDir = tmp.File($"run{i}");
            File.WriteAllText(tmp.File($"config{i}.json"), text);
            h.Check($"config #{i} from {Path.GetFileName(seed)}: {MessageText.Escape(text, 160)}", ct => RunConfigAsync(text, outDir, ct), TimeSpan.FromSeconds(90), input: tmp.File($"config{i}.json"));
        }
        Finish(h, sw);
    }

    /// <summary>What <c>consort run CONFIG --limit 1</c> does, in process: parse, validate everything, build the first run, evaluate one item.</summary>
    private static async Task RunConfigAsync(string text, string outDir, CancellationToken ct)
    {
        var obj = SafeJson.ParseNode(text, "mutant.json", SafeJson.Kind.Config) as JsonObject ?? throw new ConfigException("not an object");
        var config = RunConfig.Parse(obj, Examples, "mutant");
        if (config.Task is null || config.Runs.Count == 0) throw new ConfigException("nothing to run");
        var task = EvalTask.Create(DatasetSearch.Normalize(config.Task), DatasetSearch.Folders(Examples));
        using var session = new ModelSession
        {
            BaseDirectory = Examples, Seed = config.Seed, MaxConcurrency = config.Concurrency,
            Dev = task.Dataset.SplitNames.Contains("dev") ? task.BuildFitData("dev") : null,
        };
        foreach (var run in config.Runs) session.Describe(run.Model);
        var model = await session.BuildAsync(config.Runs[0].Model, ct);
        await EvalRunner.RunAsync(model, task, new EvalRunOptions { OutputDirectory = outDir, Limit = 1, Concurrency = config.Concurrency, Config = config.Raw }, null, ct);
        AssertNoInternalItemErrors(outDir);
    }

    /// <summary>Item errors are recorded as "Type: message"; anything but Consort's own user errors is an internal error.</summary>
    private static void AssertNoInternalItemErrors(string outDir)
    {
        var results = Path.Combine(outDir, EvalRunner.ResultsFileName);
        if (!File.Exists(results)) return;
        foreach (var line in File.ReadLines(results))
            if (JsonNode.Parse(line)?["error"]?.GetValue<string>() is { } error
                && !Regex.IsMatch(error, @"^(ConsortException|ConfigException|ModelFileException|timed out)"))
                throw new InvalidOperationException("item error: " + error);
    }

    [Fact]
    public void Datasets()
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var h = new FuzzHarness(new FuzzReport("datasets"));
        var r = new Random(FuzzHarness.Seed + 3);
        var m = new Mutators(r);
        using var tmp = new TempDir();
        string[] seeds =
        [
            Path.Combine(TestPaths.RepoRoot, "zoo", "datasets", "arith.json"), Path.Combine(TestPaths.RepoRoot, "zoo", "datasets", "facts_a.json"),
            TestPaths.Dataset("agieval_tiny"), TestPaths.Dataset("tablemwp_multiple_choice"),
        ];
        var texts = seeds.ToDictionary(s => s, File.ReadAllText);
        int n = Share(0.15);
        for (int i = 0; i < n; i++)
        {
            string seed = seeds[r.Next(seeds.Length)], path = tmp.File($"d{i}.json");
            File.WriteAllText(path, m.Json(texts[seed]));
            string? taskType = r.Next(3) == 0 ? "exact_match" : null;
            h.Check($"dataset #{i} from {Path.GetFileName(seed)}", ct =>
            {
                var spec = new JsonObject { ["dataset"] = path, ["prompt"] = "{input}{question}" };
                if (taskType is not null) spec["task_type"] = taskType;
                var task = EvalTask.Create(spec, [tmp.Path]);
                foreach (var item in task.GetItems(task.DefaultSplit).Take(25))
                {
                    _ = task.PromptText(item);
                    _ = task.BuildMessages(item);
                    _ = task.Score(item, "The answer is 42. (A)");
                }
                return Task.CompletedTask;
            }, input: path);
        }
        Finish(h, sw);
    }

    [Fact]
    public async Task MergeYaml()
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var h = new FuzzHarness(new FuzzReport("merge_yaml"));
        var r = new Random(FuzzHarness.Seed + 4);
        var m = new Mutators(r);
        using var tmp = new TempDir();
        // The inputs the example configs name, made the way their comments say.
        string inputs = tmp.File("inputs");
        ModelConverter.Convert(TestPaths.Model("tinystories-656k-hf"), Path.Combine(inputs, "656k-f32.gguf"));
        ModelConverter.Convert(TestPaths.Model("tinystories-656k-hf"), Path.Combine(inputs, "656k-f16.gguf"), new ConvertOptions { OutType = GgmlType.F16 });
        var seeds = Directory.GetFiles(Path.Combine(Examples, "merge"), "*.yml").Order(StringComparer.Ordinal)
            .Select(f => File.ReadAllText(f).Replace("../../artifacts/merge-inputs/", inputs + "/").Replace("../../../shared/", TestPaths.Shared + "/")).ToArray();
        int n = Share(0.15);
        for (int i = 0; i < n; i++)
        {
            string yml = tmp.File($"y{i}.yml"), output = tmp.File($"y{i}.gguf");
            string text = m.Yaml(seeds[r.Next(seeds.Length)]);
            File.WriteAllText(yml, text);
            string what = $"merge yaml #{i}: {MessageText.Escape(text, 200)}";
            if (h.Check(what, ct => Task.FromResult(MergeEngine.Run(MergeConfig.Load(yml), output, null, ct)), TimeSpan.FromSeconds(90), input: yml) && File.Exists(output))
                h.CheckGguf(output, what + " (merged)", newMutant: false);
        }
        await h.ProbeBatchAsync();
        Finish(h, sw);
    }
}

using System.CommandLine;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Consort.Formats;
using Consort.Formats.Gguf;
using Consort.Formats.Safetensors;
using Consort.Weights.Config;
using Consort.Weights.Engine;
using Consort.Weights.Methods;

namespace Consort.Cli.Commands;

/// <summary>
/// <c>consort bench merge</c>: generates F16 safetensors models of about <c>--mb</c> MB each in a temp folder (a
/// base and a fine-tune; a second fine-tune only when a method needs two, i.e. model_stock), then for every method of
/// <c>--methods</c> (all of them by default) times reading that method's inputs once (<c>cat &gt; /dev/null</c>) and
/// its merge of them, <c>--repeats</c> times alternating, and prints one row per method: medians, the merge/read
/// ratio, CPU time and the peak resident memory; then deletes the files. Both timings start from the same page cache:
/// cold by default (written back and dropped before each, which needs root on Linux: the read then comes from disk,
/// as the target means), or warm with <c>--cache warm</c> or where the cache cannot be dropped (then said so).
/// </summary>
public sealed class BenchMergeCommand : IBenchCommand
{
    /// <inheritdoc />
    public Command Build()
    {
        var mb = new Option<int>("--mb") { Description = "size of each generated model in MB", DefaultValueFactory = _ => 1024 };
        var density = new Option<double>("--density") { Description = "density of the methods that sparsify (TIES, DARE, breadcrumbs, DELLA)", DefaultValueFactory = _ => 0.5 };
        var keep = new Option<bool>("--keep") { Description = "keep the generated files (for inspection)" };
        var budget = new Option<int>("--budget-mb") { Description = "largest decoded size (F32, all inputs) of a tensor merged in memory; 0 streams every tensor", DefaultValueFactory = _ => (int)(MergeEngine.DefaultMemoryBudget >> 20) };
        var cache = new Option<string>("--cache") { Description = "cold: drop the page cache before the read and before the merge (needs root); warm: leave it", DefaultValueFactory = _ => "cold" };
        var repeats = new Option<int>("--repeats") { Description = "read + merge pairs per method (medians are reported)", DefaultValueFactory = _ => 3 };
        var methods = new Option<string>("--methods") { Description = "comma-separated merge methods, or all", DefaultValueFactory = _ => "all" };
        var cmd = new Command("merge", "Merge time vs a cold read and peak memory, one row per merge method, on generated F16 safetensors models (~1 GB each).");
        foreach (var o in new Option[] { mb, density, keep, budget, cache, repeats, methods }) cmd.Options.Add(o);
        cmd.SetAction((ParseResult pr, CancellationToken ct) =>
        {
            var mode = pr.GetValue(cache)?.ToLowerInvariant();
            if (mode is not ("cold" or "warm")) throw new ConsortException($"--cache {mode}: expected cold or warm");
            var names = pr.GetValue(methods)!.Trim() is "all" ? MergeMethodRegistry.Names.ToList()
                : pr.GetValue(methods)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Distinct().ToList();
            foreach (var n in names)
                if (!MergeMethodRegistry.Names.Contains(n)) throw new ConsortException($"--methods: unknown merge method '{n}' (known: all, {string.Join(", ", MergeMethodRegistry.Names)})");
            if (names.Count == 0) throw new ConsortException("--methods: give at least one method (or all)");
            Run(names, pr.GetValue(mb), pr.GetValue(density), pr.GetValue(keep), pr.GetValue(budget), mode == "cold", pr.GetValue(repeats), ct);
            return Task.FromResult(0);
        });
        return cmd;
    }

    private sealed record Row(string Method, int Inputs, double Read, double Merge, double Ratio, double Cpu, double Flush, long Peak, double Write, double WriteRatio);

    // Seconds to write and sync `bytes` through the merge engine's own output path (AtomicFile, direct).
    private static double WriteFloor(string path, long bytes, CancellationToken ct)
    {
        var buffer = new byte[8 << 20];
        new Random(1).NextBytes(buffer);
        var sw = Stopwatch.StartNew();
        using (var file = new AtomicFile(path, direct: true))
        {
            for (long left = bytes; left > 0; left -= buffer.Length)
            {
                ct.ThrowIfCancellationRequested();
                file.Stream.Write(buffer, 0, (int)Math.Min(buffer.Length, left));
            }
            file.Commit();
        }
        double seconds = sw.Elapsed.TotalSeconds;
        File.Delete(path);
        return seconds;
    }

    private static void Run(IReadOnlyList<string> methods, int mb, double density, bool keep, int budgetMb, bool cold, int repeats, CancellationToken ct)
    {
        if (repeats < 1) throw new ConsortException("--repeats must be at least 1");
        if (budgetMb < 0) throw new ConsortException("--budget-mb must be 0 or more");
        if (mb < 8) throw new ConsortException("--mb must be at least 8");
        if (!(density > 0 && density <= 1)) throw new ConsortException("--density must be in (0, 1]");
        var dir = Directory.CreateTempSubdirectory("consort-bench-merge-").FullName;
        try
        {
            var sw = Stopwatch.StartNew();
            const int rows = 2048, cols = 4096; // 16 MB per F16 tensor
            int tensors = Math.Max(1, (int)((long)mb * 1024 * 1024 / ((long)rows * cols * 2)));
            var configs = methods.Select(m => (Method: m, Config: ConfigFor(m, dir, density))).ToList();
            // Every config is checked before anything is generated.
            foreach (var (_, c) in configs) MergeEngine.Validate(c);
            var models = configs.SelectMany(c => c.Config.AllPaths).Distinct().Select(Path.GetFileName).Order().ToList();
            Generate(dir, models!, tensors, rows, cols, ct);
            long modelBytes = new FileInfo(Path.Combine(dir, models[0]!, "model.safetensors")).Length;
            Console.WriteLine($"generated {models.Count} models x {tensors} tensors [{rows}, {cols}] F16 = {modelBytes / 1e6:F0} MB each in {sw.Elapsed.TotalSeconds:F1} s ({dir})");
            if (cold && !DropCaches(out var why))
            {
                Console.WriteLine($"cannot drop the page cache ({why}): measuring against a warm read instead");
                cold = false;
            }

            var table = new List<Row>();
            foreach (var (method, config) in configs)
            {
                var inputs = config.AllPaths.Select(p => Path.Combine(p, "model.safetensors")).ToList();
                double Cat()
                {
                    var cat = Stopwatch.StartNew();
                    using (var p = Process.Start(new ProcessStartInfo("/bin/sh", ["-c", "cat " + string.Join(' ', inputs.Select(i => $"'{i}'")) + " > /dev/null"]))!)
                        p.WaitForExit();
                    return cat.Elapsed.TotalSeconds;
                }
                // Read and merge alternate, each from the same (cold) cache, so drifting disk speed hits both alike.
                var cats = new List<double>();
                var merges = new List<(MergeResult R, double Cpu)>();
                var writes = new List<double>();
                for (int rep = 0; rep < repeats; rep++)
                {
                    ct.ThrowIfCancellationRequested();
                    if (cold) DropCaches(out _);
                    cats.Add(Cat());
                    if (cold) DropCaches(out _);
                    // The previous merge's heap is collected and given back to the system before the peak is reset, so
                    // each merge starts from what a fresh `consort merge` process has (reset first, the heap the last
                    // method left behind counted against this one: up to 150 MB).
                    GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
                    GC.WaitForPendingFinalizers();
                    ResetPeak();
                    long rss0 = Environment.WorkingSet;
                    var p0 = Process.GetCurrentProcess();
                    var cpu0 = p0.UserProcessorTime + p0.PrivilegedProcessorTime;
                    var out_ = Path.Combine(dir, "out");
                    if (Directory.Exists(out_)) Directory.Delete(out_, true);
                    var r = MergeEngine.Run(config, out_, ct: ct, memoryBudgetBytes: (long)budgetMb << 20);
                    var p1 = Process.GetCurrentProcess();
                    merges.Add((r, (p1.UserProcessorTime + p1.PrivilegedProcessorTime - cpu0).TotalSeconds));
                    // The write floor: the same number of bytes written the way merge outputs are (O_DIRECT where
                    // the file system allows) and synced, with no reading or arithmetic.
                    long outBytes = new DirectoryInfo(out_).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length);
                    writes.Add(WriteFloor(Path.Combine(dir, "floor.bin"), outBytes, ct));
                    Console.WriteLine($"{method} run {rep + 1}: read {cats[^1]:F2} s, merge {r.Seconds:F2} s (final flush {r.CommitSeconds:F2} s), write of {outBytes / 1e6:F0} MB {writes[^1]:F2} s: ratio {r.Seconds / cats[^1]:F2}; RSS {rss0 / 1e6:F0} MB before, peak {r.PeakMemoryBytes / 1e6:F0} MB");
                }
                var mid = merges.OrderBy(m => m.R.Seconds).ElementAt(merges.Count / 2);
                table.Add(new Row(method, inputs.Count, BenchStats.Median(cats), BenchStats.Median(merges.Select(m => m.R.Seconds)),
                    BenchStats.Median(cats.Zip(merges, (c, m) => m.R.Seconds / c)), mid.Cpu, mid.R.CommitSeconds, merges.Max(m => m.R.PeakMemoryBytes),
                    BenchStats.Median(writes), BenchStats.Median(writes.Zip(merges, (w, m) => m.R.Seconds / Math.Max(w, 1e-9)))));
            }

            string cacheWord = cold ? "cold cache: from disk" : "warm cache";
            Console.WriteLine();
            Console.WriteLine($"medians of {repeats} run(s) per method; read = cat > /dev/null of the method's inputs ({cacheWord}); the merge includes writing and fsync of its output");
            Console.WriteLine("write = the output's bytes written as merges write them (O_DIRECT where allowed) and synced: the floor of any merge that writes its output");
            Console.WriteLine($"| method | inputs | read s | merge s | merge / read | merge CPU s | final flush s | peak RSS MB | write s | merge / write |");
            Console.WriteLine($"| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
            foreach (var r in table)
                Console.WriteLine($"| {r.Method} | {r.Inputs} | {r.Read:F2} | {r.Merge:F2} | {r.Ratio:F2} | {r.Cpu:F1} | {r.Flush:F2} | {(r.Peak < 0 ? "unknown" : $"{r.Peak / 1e6:F0}")} | {r.Write:F2} | {r.WriteRatio:F2} |");
            Console.WriteLine($"targets: merge / read <= 3, peak RSS < 400 MB; met by {table.Count(r => r.Ratio <= 3)} / {table.Count} and {table.Count(r => r.Peak >= 0 && r.Peak < 400e6)} / {table.Count}");
            Console.WriteLine($"in-memory budget: {(budgetMb == 0 ? "0 (every tensor streamed)" : $"{budgetMb} MB per tensor")}; load average at the end: {(File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "unknown")} on {Environment.ProcessorCount} cores");
        }
        finally
        {
            if (!keep) Directory.Delete(dir, true);
        }
    }

    // A config per method over the generated models: a is the base, b (and c for methods that need two) fine-tunes.
    // Weights 1 with a base (task vectors), 0.5 without; sparsifying methods at --density; required globals at mid values.
    internal static MergeConfig ConfigFor(string method, string dir, double density)
    {
        var m = MergeMethodRegistry.Get(method);
        bool withBase = m.RequiresBase;
        var names = withBase ? (m.MinModels >= 2 ? new[] { "b", "c" } : ["b"]) : m.MaxModels == 1 ? ["b"] : ["a", "b"];
        var perModel = new Dictionary<string, MergeParameter>();
        var global = new Dictionary<string, MergeParameter>();
        foreach (var p in m.Parameters)
        {
            MergeParameter? v = p.Name switch
            {
                "weight" => MergeParameter.Scalar(withBase ? 1.0 : 0.5),
                "density" => MergeParameter.Scalar(density),
                "t" when p.Default is null => MergeParameter.Scalar(method == "nearswap" ? 0.001 : 0.5),
                _ => null,
            };
            if (v is not null) (p.PerModel ? perModel : global)[p.Name] = v;
        }
        return new MergeConfig
        {
            MergeMethod = method, BaseModel = withBase ? Path.Combine(dir, "a") : null,
            Models = names.Select(n => new MergeModel(Path.Combine(dir, n), perModel)).ToList(), Parameters = global,
        };
    }

    // Model "a" is random; every other model is a plus its own small random delta (a fine-tune of it).
    private static void Generate(string dir, IReadOnlyList<string> names, int tensors, int rows, int cols, CancellationToken ct)
    {
        var writers = names.Select(n => { Directory.CreateDirectory(Path.Combine(dir, n)); return new SafetensorsWriter(Path.Combine(dir, n, "model.safetensors")); }).ToList();
        try
        {
            for (int t = 0; t < tensors; t++)
                foreach (var w in writers) w.AddTensor($"model.layers.{t}.mlp.up_proj.weight", [rows, cols], GgmlType.F16);
            var rowBuf = names.Select(_ => new Half[cols]).ToArray();
            ulong s = 0x9E3779B97F4A7C15UL;
            for (int t = 0; t < tensors; t++)
            {
                ct.ThrowIfCancellationRequested();
                var name = $"model.layers.{t}.mlp.up_proj.weight";
                for (int r = 0; r < rows; r++)
                {
                    for (int c = 0; c < cols; c++)
                    {
                        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                        float x = ((int)(s >> 40) - (1 << 23)) / (float)(1 << 23) * 0.05f;
                        for (int k = 0; k < names.Count; k++)
                        {
                            // Deltas from other bits of the same draw (bits 0-23 for b, 16-39 for c), x from bits 40-63.
                            float d = names[k] == "a" ? 0 : ((int)((s >> (16 * (k - 1))) & 0xffffff) - (1 << 23)) / (float)(1 << 23) * 0.002f;
                            rowBuf[k][c] = (Half)(x + d);
                        }
                    }
                    for (int k = 0; k < names.Count; k++) writers[k].WriteTensorChunk(name, MemoryMarshal.AsBytes(rowBuf[k].AsSpan()));
                }
            }
            foreach (var w in writers) w.Commit();
        }
        finally
        {
            foreach (var w in writers) w.Dispose();
        }
        foreach (var n in names) File.WriteAllText(Path.Combine(dir, n, "config.json"), "{}");
    }

    // Linux, root: write back dirty pages, then drop clean ones, so the next read comes from the disk.
    private static bool DropCaches(out string why)
    {
        why = "";
        if (!OperatingSystem.IsLinux()) { why = "not Linux"; return false; }
        try
        {
            using (var p = Process.Start(new ProcessStartInfo("sync"))!) p.WaitForExit();
            File.WriteAllText("/proc/sys/vm/drop_caches", "3");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.ComponentModel.Win32Exception)
        {
            why = e.Message;
            return false;
        }
    }

    // Linux: writing 5 to clear_refs resets VmHWM, so the peak covers the merge only (not generation).
    private static void ResetPeak()
    {
        try { File.WriteAllText("/proc/self/clear_refs", "5"); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

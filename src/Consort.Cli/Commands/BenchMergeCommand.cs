using System.CommandLine;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Consort.Formats.Gguf;
using Consort.Formats.Safetensors;
using Consort.Weights.Config;
using Consort.Weights.Engine;

namespace Consort.Cli.Commands;

/// <summary>
/// <c>consort bench merge</c>: generates two F16 safetensors models of about <c>--mb</c> MB each in a temp folder,
/// times reading them once (<c>cat &gt; /dev/null</c>) and a TIES merge of them, reports MB/s, the ratio and peak
/// resident memory, then deletes the files. Both timings start from the same page cache: cold by default (written
/// back and dropped before each, which needs root on Linux: the read then comes from disk, as the target means),
/// or warm with <c>--cache warm</c> or where the cache cannot be dropped (then said so).
/// </summary>
public sealed class BenchMergeCommand : IBenchCommand
{
    /// <inheritdoc />
    public Command Build()
    {
        var mb = new Option<int>("--mb") { Description = "size of each generated model in MB", DefaultValueFactory = _ => 1024 };
        var density = new Option<double>("--density") { Description = "TIES density", DefaultValueFactory = _ => 0.5 };
        var keep = new Option<bool>("--keep") { Description = "keep the generated files (for inspection)" };
        var budget = new Option<int>("--budget-mb") { Description = "largest decoded size (F32, all inputs) of a tensor merged in memory; 0 streams every tensor", DefaultValueFactory = _ => (int)(MergeEngine.DefaultMemoryBudget >> 20) };
        var cache = new Option<string>("--cache") { Description = "cold: drop the page cache before the read and before the merge (needs root); warm: leave it", DefaultValueFactory = _ => "cold" };
        var repeats = new Option<int>("--repeats") { Description = "read + merge pairs (medians are reported)", DefaultValueFactory = _ => 3 };
        var cmd = new Command("merge", "TIES merge throughput and peak memory on two generated F16 safetensors models (~1 GB each).");
        cmd.Options.Add(mb);
        cmd.Options.Add(density);
        cmd.Options.Add(keep);
        cmd.Options.Add(budget);
        cmd.Options.Add(cache);
        cmd.Options.Add(repeats);
        cmd.SetAction((ParseResult pr, CancellationToken ct) =>
        {
            var mode = pr.GetValue(cache)?.ToLowerInvariant();
            if (mode is not ("cold" or "warm")) throw new ConsortException($"--cache {mode}: expected cold or warm");
            Run(pr.GetValue(mb), pr.GetValue(density), pr.GetValue(keep), pr.GetValue(budget), mode == "cold", pr.GetValue(repeats), ct);
            return Task.FromResult(0);
        });
        return cmd;
    }


    private static void Run(int mb, double density, bool keep, int budgetMb, bool cold, int repeats, CancellationToken ct)
    {
        if (repeats < 1) throw new ConsortException("--repeats must be at least 1");
        if (budgetMb < 0) throw new ConsortException("--budget-mb must be 0 or more");
        if (mb < 8) throw new ConsortException("--mb must be at least 8");
        var dir = Directory.CreateTempSubdirectory("consort-bench-merge-").FullName;
        try
        {
            var sw = Stopwatch.StartNew();
            const int rows = 2048, cols = 4096; // 16 MB per F16 tensor
            int tensors = Math.Max(1, (int)((long)mb * 1024 * 1024 / ((long)rows * cols * 2)));
            Generate(dir, tensors, rows, cols, ct);
            long inputBytes = Directory.GetFiles(dir, "*.safetensors", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
            Console.WriteLine($"generated 2 models x {tensors} tensors [{rows}, {cols}] F16 = {inputBytes / 1e6:F0} MB in {sw.Elapsed.TotalSeconds:F1} s ({dir})");

            double Cat()
            {
                var cat = Stopwatch.StartNew();
                using (var p = Process.Start(new ProcessStartInfo("/bin/sh", ["-c", $"cat '{dir}/a/model.safetensors' '{dir}/b/model.safetensors' > /dev/null"]))!)
                    p.WaitForExit();
                return cat.Elapsed.TotalSeconds;
            }
            if (cold && !DropCaches(out var why))
            {
                Console.WriteLine($"cannot drop the page cache ({why}): measuring against a warm read instead");
                cold = false;
            }

            var config = new MergeConfig
            {
                MergeMethod = "ties", BaseModel = Path.Combine(dir, "a"),
                Models = [new MergeModel(Path.Combine(dir, "b"), new Dictionary<string, MergeParameter> { ["weight"] = MergeParameter.Scalar(1.0), ["density"] = MergeParameter.Scalar(density) })],
            };
            // Read and merge alternate, each from the same (cold) cache, so drifting disk speed hits both alike.
            var cats = new List<double>();
            var merges = new List<(MergeResult R, double User, double Sys)>();
            double warmCat = 0;
            for (int rep = 0; rep < repeats; rep++)
            {
                ct.ThrowIfCancellationRequested();
                if (cold) DropCaches(out _);
                cats.Add(Cat());
                if (rep == 0) warmCat = Cat();
                if (cold) DropCaches(out _);
                ResetPeak();
                GC.Collect();
                var p0 = Process.GetCurrentProcess();
                var (user0, sys0) = (p0.UserProcessorTime, p0.PrivilegedProcessorTime);
                var out_ = Path.Combine(dir, "out");
                if (Directory.Exists(out_)) Directory.Delete(out_, true);
                var r = MergeEngine.Run(config, out_, ct: ct, memoryBudgetBytes: (long)budgetMb << 20);
                var p1 = Process.GetCurrentProcess();
                merges.Add((r, (p1.UserProcessorTime - user0).TotalSeconds, (p1.PrivilegedProcessorTime - sys0).TotalSeconds));
                Console.WriteLine($"run {rep + 1}: read {cats[^1]:F2} s, merge {r.Seconds:F2} s (final flush {r.CommitSeconds:F2} s): ratio {r.Seconds / cats[^1]:F2}");
            }
            double catSeconds = BenchStats.Median(cats);
            var mid = merges.OrderBy(m => m.R.Seconds).ElementAt(merges.Count / 2);
            double mergeSeconds = BenchStats.Median(merges.Select(m => m.R.Seconds));
            double ratio = BenchStats.Median(cats.Zip(merges, (c, m) => m.R.Seconds / c));
            double cpu = mid.User + mid.Sys;
            string cacheWord = cold ? "cold cache: from disk" : "warm cache";
            Console.WriteLine($"cat > /dev/null of both inputs: {catSeconds:F2} s median of {repeats} ({inputBytes / 1e6 / catSeconds:F0} MB/s, {cacheWord})");
            if (cold) Console.WriteLine($"  the same, cache warm:         {warmCat:F2} s ({inputBytes / 1e6 / warmCat:F0} MB/s; the merges start cold too)");
            Console.WriteLine($"TIES merge (density {density}):  {mergeSeconds:F2} s median ({inputBytes / 1e6 / mergeSeconds:F0} MB/s of input; {mid.R.BytesRead / 1e6:F0} MB decoded over all passes, {mid.R.BytesWritten / 1e6:F0} MB written)");
            Console.WriteLine($"  of which the final flush:     {mid.R.CommitSeconds:F2} s (fsync of what the writeback during the merge had not yet written, and the rename)");
            Console.WriteLine($"merge CPU time (user+sys):     {cpu:F2} s = {mid.User:F2} + {mid.Sys:F2} ({inputBytes / 1e6 / cpu:F0} MB/s per CPU-second; up to {Environment.ProcessorCount} threads)");
            Console.WriteLine($"in-memory budget:              {(budgetMb == 0 ? "0 (every tensor streamed)" : $"{budgetMb} MB per tensor")}");
            Console.WriteLine($"merge / read ratio:            {ratio:F2} median of the runs' ratios (target <= 3; {cacheWord}; the merge includes writing and fsync of its output)");
            if (cold) Console.WriteLine($"merge / warm read ratio:       {mergeSeconds / warmCat:F2} (for reference: a read from memory)");
            Console.WriteLine($"load average at the end:       {(File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "unknown")} on {Environment.ProcessorCount} cores");
            Console.WriteLine($"peak resident memory:          {(merges.Max(m => m.R.PeakMemoryBytes) is var pk && pk < 0 ? "unknown" : $"{pk / 1e6:F0} MB")} (target < 400 MB)");
        }
        finally
        {
            if (!keep) Directory.Delete(dir, true);
        }
    }

    private static void Generate(string dir, int tensors, int rows, int cols, CancellationToken ct)
    {
        using var a = new SafetensorsWriter(Path.Combine(dir, "a", "model.safetensors"));
        using var b = new SafetensorsWriter(Path.Combine(dir, "b", "model.safetensors"));
        Directory.CreateDirectory(Path.Combine(dir, "a"));
        Directory.CreateDirectory(Path.Combine(dir, "b"));
        for (int t = 0; t < tensors; t++)
        {
            var name = $"model.layers.{t}.mlp.up_proj.weight";
            a.AddTensor(name, [rows, cols], GgmlType.F16);
            b.AddTensor(name, [rows, cols], GgmlType.F16);
        }
        var va = new Half[cols];
        var vb = new Half[cols];
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
                    float d = ((int)(s & 0xffffff) - (1 << 23)) / (float)(1 << 23) * 0.002f;
                    va[c] = (Half)x;
                    vb[c] = (Half)(x + d);
                }
                a.WriteTensorChunk(name, MemoryMarshal.AsBytes(va.AsSpan()));
                b.WriteTensorChunk(name, MemoryMarshal.AsBytes(vb.AsSpan()));
            }
        }
        a.Commit();
        b.Commit();
        File.WriteAllText(Path.Combine(dir, "a", "config.json"), "{}");
        File.WriteAllText(Path.Combine(dir, "b", "config.json"), "{}");
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

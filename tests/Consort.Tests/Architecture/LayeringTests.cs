using System.Reflection;
using Consort.Methods;
using Consort.Testing;

namespace Consort.Tests.Architecture;

/// <summary>Where a method lives and what it may touch: the layering the design depends on, checked.</summary>
public class LayeringTests
{
    private static readonly string[] Backends = ["Consort.LlamaCpp", "Consort.OpenAI", "Consort.Training", "Consort.Server", "Consort.Cli", "Consort.Core", "LLamaSharp", "OpenAI"];

    [Fact]
    public void Methods_reference_no_backend_and_no_trainer()
    {
        var refs = typeof(MethodRegistry).Assembly.GetReferencedAssemblies().Select(a => a.Name!).ToList();
        Assert.Equal("Consort.Methods", typeof(MethodRegistry).Assembly.GetName().Name);
        Assert.Empty(refs.Intersect(Backends));
        Assert.Contains("Consort.Abstractions", refs);
    }

    [Fact]
    public void No_file_under_Methods_names_a_backend()
    {
        var dir = Path.Combine(TestPaths.RepoRoot, "src", "Consort", "Methods");
        var offenders = Directory.EnumerateFiles(dir, "*.cs", SearchOption.AllDirectories)
            .SelectMany(f => File.ReadLines(f).Select((line, i) => (f, line, i)))
            .Where(x => Backends.Take(4).Any(b => x.line.Contains(b + ".") || x.line.Contains("using " + b)) || x.line.Contains("LLama"))
            .Select(x => $"{Path.GetRelativePath(dir, x.f)}:{x.i + 1}: {x.line.Trim()}")
            .ToList();
        Assert.True(offenders.Count == 0, "backend references under src/Consort/Methods:\n" + string.Join("\n", offenders));
        var project = File.ReadAllText(Path.Combine(dir, "Consort.Methods.csproj"));
        Assert.DoesNotContain("LlamaCpp", project);
        Assert.DoesNotContain("Training", project);
        Assert.DoesNotContain("OpenAI", project);
    }

    [Fact]
    public void Abstractions_depend_on_nothing_of_Consort()
    {
        var refs = typeof(ModelDescriptor).Assembly.GetReferencedAssemblies().Select(a => a.Name!).Where(n => n.StartsWith("Consort")).ToList();
        Assert.Empty(refs);
    }

    [Fact]
    public void Every_method_sits_in_its_level_folder_with_its_options_beside_it()
    {
        var root = Path.Combine(TestPaths.RepoRoot, "src", "Consort", "Methods");
        foreach (var m in MethodRegistry.Methods)
        {
            var type = m.GetType();
            string level = m.Metadata.Level.ToString();
            Assert.Equal($"Consort.Methods.{level}", type.Namespace);
            var file = Directory.EnumerateFiles(Path.Combine(root, level), "*.cs", SearchOption.AllDirectories)
                .FirstOrDefault(f => File.ReadAllText(f).Contains($"class {type.Name} "));
            Assert.True(file is not null, $"{type.Name} ({m.Metadata.Name}) is not declared under Methods/{level}/");
            Assert.Contains($"class {m.OptionsType.Name} ", File.ReadAllText(file!));
        }
    }

    [Fact]
    public void Method_names_and_aliases_are_unique_and_options_have_defaults_and_docs()
    {
        var names = MethodRegistry.Methods.SelectMany(m => m.Metadata.Aliases.Prepend(m.Metadata.Name)).ToList();
        Assert.Equal(names.Count, names.Distinct(StringComparer.OrdinalIgnoreCase).Count());
        foreach (var m in MethodRegistry.Methods)
        {
            Assert.False(string.IsNullOrWhiteSpace(m.Metadata.Description));
            foreach (var o in m.Options)
            {
                Assert.False(string.IsNullOrWhiteSpace(o.Description), $"{m.Metadata.Name}.{o.Name} has no description");
                Assert.False(string.IsNullOrWhiteSpace(o.Default), $"{m.Metadata.Name}.{o.Name} has no default text");
            }
            Assert.NotNull(m.GetType().GetCustomAttribute<CollaborationMethodAttribute>());
        }
    }
}
